"""The progress display and the summary: what a user reads while and after a harvest runs."""

from __future__ import annotations

import io

from tmapi_async import HarvestProgress
from tmapi_async.cli._display import (
    HarvestSummary,
    ProgressDisplay,
    choose_mode,
    format_duration,
)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress() -> HarvestProgress:
    p = HarvestProgress(started=0.0)
    p.shops_seen, p.shops_done, p.shops_failed = 10, 8, 1
    p.pages_done, p.pages_planned, p.items = 40, 50, 800
    p.requests, p.retries = 45, 5
    return p


def test_mode_follows_the_terminal() -> None:
    """Live on a terminal, plain lines in a pipe, nothing when quiet."""
    assert choose_mode(quiet=False, stream=_Tty()) == "live"
    assert choose_mode(quiet=False, stream=io.StringIO()) == "plain"
    assert choose_mode(quiet=True, stream=_Tty()) == "quiet"


def test_durations_read_well() -> None:
    """Seconds, minutes, hours."""
    assert format_duration(4.24) == "4.2s"
    assert format_duration(125) == "2:05"
    assert format_duration(3725) == "1:02:05"


def test_plain_line_shows_every_counter_and_an_eta() -> None:
    """shops done/total, failures, pages done/planned, items, req/s, retries, ETA."""
    display = ProgressDisplay(_progress(), total_shops=20, mode="plain", stream=io.StringIO())
    line = display.line()
    for part in ("shops 8/20", "failed 1", "pages 40/50", "items 800", "req/s", "retries 5"):
        assert part in line
    assert "ETA ?" not in line  # 10 planned + 10 unopened shops x 5 pages, at the page rate


def test_eta_unknown_while_stdin_is_still_read() -> None:
    """Without a shop count and with input left, the ETA is not guessed."""
    display = ProgressDisplay(_progress(), total_shops=None, mode="plain", stream=io.StringIO())
    assert display.line().endswith("ETA ?")


def test_messages_are_scrubbed_and_quiet_keeps_errors() -> None:
    """Every message passes the scrubber; quiet mode shows errors only."""
    out = io.StringIO()
    display = ProgressDisplay(
        _progress(), mode="quiet", stream=out, scrub=lambda s: s.replace("SECRET", "***")
    )
    with display:
        display.log("a notice")
        display.error("failed: SECRET line")
    assert out.getvalue() == "failed: *** line\n"


def test_live_display_renders_on_a_terminal() -> None:
    """The rich display draws the counters on a terminal stream and logs above it."""
    out = _Tty()
    with ProgressDisplay(_progress(), total_shops=20, mode="live", stream=out) as display:
        display.log("complete https://shop1.1688.com/")
    text = out.getvalue()
    assert "complete https://shop1.1688.com/" in text
    assert "shops" in text


def test_summary_reports_billed_requests_against_pages() -> None:
    """The summary: shops by status, items, billed requests vs pages, retries, elapsed."""
    summary = HarvestSummary.from_progress(_progress(), export_items=1200, pages_needed=50)
    text = "\n".join(summary.lines())
    assert "0 complete" in text
    assert "1 failed" in text
    assert "800 new this run, 1,200 in the export" in text
    assert "45 billed for 40 pages read (50 pages needed this run; 5 extra: 5 retries)" in text
    assert "elapsed:" in text


def test_the_line_says_how_long_it_has_waited_for_redis() -> None:
    """A harvest through Redis waiting for it says so, with how long; not otherwise."""
    import time

    progress = _progress()
    display = ProgressDisplay(progress, total_shops=20, mode="plain", stream=io.StringIO())
    assert "Redis" not in display.line()
    progress.redis_away_since = time.monotonic() - 3.0
    assert "waiting for Redis (3." in display.line()
