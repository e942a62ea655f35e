"""The dashboard's HTML page, from the same snapshot ``/api/status`` serves (pure: a dict
in, a string out). No JavaScript: a meta refresh reloads it; the chart is inline SVG."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render"]

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#eef}td.l,th.l{text-align:left}.muted{color:#777}
.bad{color:#b00;font-weight:600}.ok{color:#070}
.bar{display:inline-block;width:8em;height:.7em;background:#ddd;vertical-align:middle}
.bar i{display:block;height:100%;background:#46a}
"""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _cell(value: Any, css: str = "") -> str:
    return (
        f'<td class="{css}">{escape(str(value))}</td>' if css else f"<td>{escape(str(value))}</td>"
    )


def _table(headers: list[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f'<th class="l">{escape(h)}</th>' if i == 0 else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))  # fmt: skip
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _harvests(snapshot: dict[str, Any]) -> str:
    rows = []
    for h in snapshot["harvests"]:
        share = h["done"] / h["submitted"] if h["submitted"] else 0.0
        progress = (
            f'<td><span class="bar"><i style="width:{100 * share:.0f}%"></i></span> '
            f"{h['done']}/{h['submitted']} shops</td>"
        )
        failed = h["partial"] + h["failed"]
        rows.append(
            "<tr>"
            + _cell(h["id"], "l")
            + _cell(h["state"], "l")
            + progress
            + _cell(f"{h['pages']:,} pages, {h['items']:,} items")
            + _cell(f"{h['pages_per_s']:.1f}/s")
            + _cell(_duration(h["eta_s"]))
            + _cell(h["queued"])
            + _cell(h["in_progress"])
            + _cell(h["backlog"], "bad" if h["backlog"] >= h["max_backlog"] > 0 else "")
            + _cell(h["dead_letters"], "bad" if h["dead_letters"] else "")
            + _cell(failed, "bad" if failed else "")
            + _cell(h["output"], "l")
            + "</tr>"
        )
    return _table(
        ["harvest", "state", "progress", "read", "rate", "ETA", "queued", "in progress",
         "backlog", "dead letters", "failed shops", "export"],
        rows, "No harvest in this Redis.",
    )  # fmt: skip


def _workers(snapshot: dict[str, Any]) -> str:
    rows = [
        "<tr>"
        + _cell(w["id"], "l")
        + _cell(f"{w['heartbeat_age_s']} s ago", "ok" if w["alive"] else "bad")
        + _cell("alive" if w["alive"] else "silent (presumed dead)", "l")
        + _cell(w["shops_held"])
        + _cell(w["shops_done"])
        + _cell(f"{w['requests_sent']:,}")
        + "</tr>"
        for w in snapshot["workers"]
    ]
    return _table(
        ["worker", "heartbeat", "state", "shops held", "shops finished", "requests sent"],
        rows, "No worker.",
    )  # fmt: skip


def _tokens(snapshot: dict[str, Any]) -> str:
    rows = [
        "<tr>"
        + _cell(t["fingerprint"], "l")
        + _cell(f"{t['rate']}/s")
        + _cell(t["burst"])
        + _cell(t["concurrency"])
        + _cell(t["limit"])
        + _cell(t["in_flight"])
        + _cell(t["stopped"] or "in service", "bad" if t["stopped"] else "ok")
        + "</tr>"
        for t in snapshot["tokens"]
    ]
    return _table(
        ["token", "rate", "burst", "concurrency", "adaptive limit", "in flight", "state"],
        rows, "No token has sent through this Redis.",
    )  # fmt: skip


def _chart(snapshot: dict[str, Any]) -> str:
    chart = snapshot["chart"]
    values: list[float] = chart["pages_per_s"]
    width, height = 720, 120
    if len(values) < 2:
        return '<p class="muted">The chart fills as the page is watched (a point every ' \
            f"{chart['interval_s']:g} s, the last hour).</p>"  # fmt: skip
    top = max(max(values), 1.0)
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - (v / top) * (height - 10):.1f}" for i, v in enumerate(values)
    )
    minutes = len(values) * chart["interval_s"] / 60
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" '
        f'role="img" aria-label="pages answered per second">'
        f'<rect width="{width}" height="{height}" fill="#fff" stroke="#ddd"/>'
        f'<polyline fill="none" stroke="#46a" stroke-width="1.5" points="{points}"/>'
        f'<text x="4" y="14" font-size="11">{top:,.1f}/s</text>'
        f'<text x="4" y="{height + 15}" font-size="11">{minutes:.0f} min ago</text>'
        f'<text x="{width - 30}" y="{height + 15}" font-size="11">now</text></svg>'
    )


def render(snapshot: dict[str, Any], *, refresh: int = 5) -> str:
    """The whole page for ``snapshot`` (see ``tmapi-async dashboard``)."""
    redis = "" if snapshot["redis_up"] else ' <span class="bad">Redis cannot be read</span>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh}">'
        "<title>tmapi-async dashboard</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>tmapi-async</h1>"
        f'<p class="muted">{escape(snapshot["redis"])} · {escape(snapshot["time"])} · '
        f"refreshed every {refresh} s{redis}</p>"
        f"<h2>Harvests</h2>{_harvests(snapshot)}"
        f"<h2>Workers</h2>{_workers(snapshot)}"
        f"<h2>Tokens</h2>{_tokens(snapshot)}"
        f"<h2>Pages answered per second</h2>{_chart(snapshot)}"
        '<p class="muted">JSON: <a href="api/status">api/status</a> · '
        'Prometheus: <a href="metrics">metrics</a></p>'
        "</body></html>"
    )
