"""``tmapi-async status``: what a Redis of harvests is doing, for whoever is on call."""

from __future__ import annotations

import argparse
from typing import Any

from ._exit import ExitCode
from ._output import UsageError, err, say

__all__ = ["add_parser", "run"]

EPILOG = """\
Lists every harvest submitted to the Redis with its state (open, paused, cancelled,
failed, finished), whether a coordinator is attached, its results not yet exported (the
backlog: workers hold back at its bound, `harvest --max-backlog`), how long a finished
one is still kept (`harvest --keep`), and its shops queued, in progress, done and
failed; every worker with its last heartbeat (a worker silent for more than 3 s is taken
for dead: its shops go to others); and the limits in force for each token, named by its
fingerprint (a token itself is never stored in Redis).

examples:
  tmapi-async status --redis redis://127.0.0.1:6379/0
  tmapi-async pause 3f9a                  # then: resume, cancel, forget (an id prefix)
  TMAPI_REDIS_URL=redis://:password@10.0.0.5:6379/0 tmapi-async status
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``status`` to the subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "status",
        help="harvests, workers and token limits of a Redis (scale out)",
        description="Show the harvests, workers and token limits of a Redis.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redis", metavar="URL", help="the Redis (default: $TMAPI_REDIS_URL)")
    return parser


def run(args: argparse.Namespace) -> int:
    """The ``status`` command; returns the exit code."""
    import asyncio  # here, not at the top: --help does not need it

    from .._redis.connection import redis_url_from_env

    url = redis_url_from_env(args.redis)
    if url is None:
        raise UsageError("no Redis: pass --redis URL or set TMAPI_REDIS_URL")
    return asyncio.run(_status(url))


async def _status(url: str) -> int:
    from .._errors import FatalError
    from .._redis.connection import open_connection

    try:
        conn = await open_connection(url)
    except FatalError as error:
        err(f"tmapi-async status: {error}")
        return ExitCode.FATAL
    try:
        for line in await status_lines(conn.client):
            say(line)
    except Exception as error:
        if not conn.is_redis_error(error):
            raise
        err(f"tmapi-async status: {conn.unavailable(error)}")
        return ExitCode.FATAL
    finally:
        await conn.aclose()
    return ExitCode.OK


async def status_lines(redis: Any) -> list[str]:
    """The report, one line a list entry."""
    from .._redis.queue import PREFIX, HarvestQueue, _text
    from .._redis.worker import alive, read_workers

    lines = ["harvests:"]
    hids = sorted(_text(raw) for raw in await redis.smembers(f"{PREFIX}:harvests"))
    shown = 0
    for hid in hids:
        queue = HarvestQueue(redis, hid)
        meta = {_text(k): _text(v) for k, v in (await redis.hgetall(queue.meta_key)).items()}
        if not meta:
            continue  # expired (or forgotten) since it was listed
        shown += 1
        counts = await queue.counts()
        dead = await redis.scard(queue.dead_key)
        lines.append(f"  {hid}  {meta.get('state', '?'):<9} {meta.get('output', '')}")
        lines.append(await _control_line(redis, queue, meta))
        lines.append(
            f"    shops: {counts.submitted} submitted, {counts.queued} queued, "
            f"{counts.in_progress} in progress, {counts.done} done "
            f"({counts.complete} complete, {counts.partial} partial, {counts.failed} failed"
            f"{f', {dead} given up' if dead else ''}); "
            f"pages {counts.pages}, items {counts.items}"
        )
    if not shown:
        lines.append("  (none)")
    now, workers = await read_workers(redis)
    lines.append("workers:")
    for worker_id, (beat, about) in sorted(workers.items()):
        state = "alive" if alive(now, beat) else "silent (presumed dead)"
        lines.append(
            f"  {worker_id}  last heartbeat {now - beat} s ago, {state}; "
            f"holds {about.get('shops', 0)} shops, finished {about.get('done', 0)}, "
            f"sent {about.get('sent', 0)} requests"
        )
    if not workers:
        lines.append("  (none)")
    lines.append("tokens:")
    fingerprints = sorted(_text(raw) for raw in await redis.smembers(f"{PREFIX}:tokens"))
    for fingerprint in fingerprints:
        lines.append(await _token_line(redis, fingerprint))
    if not fingerprints:
        lines.append("  (none)")
    return lines


async def _control_line(redis: Any, queue: Any, meta: dict[str, str]) -> str:
    """A harvest's coordinator, backlog, and how long a finished one is kept."""
    from .._redis.control import attached_key
    from .._redis.gate import DEFAULT_MAX_BACKLOG

    attached = await redis.exists(attached_key(queue))
    backlog = await redis.xlen(queue.results_key)
    bound = meta.get("max_backlog", str(DEFAULT_MAX_BACKLOG)) or "none"
    line = (
        f"    coordinator {'attached' if attached else 'not attached'}; "
        f"backlog {backlog} results not exported (bound {bound})"
    )
    if meta.get("state") == "finished":
        ttl = int(await redis.ttl(queue.meta_key))
        line += f"; kept {_duration(ttl)} more" if ttl > 0 else "; kept (no expiry)"
    if meta.get("state") == "failed":
        line += f"; failed: {meta.get('error', '')}"
    return line


def _duration(seconds: int) -> str:
    """``3d 4h``, ``5h 12m``, ``40s``: a duration for a reader."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


async def _token_line(redis: Any, fingerprint: str) -> str:
    from .._redis.queue import _text
    from .._redis.token import TokenKeys, token_clock

    keys = TokenKeys(fingerprint)
    state = {_text(k): _text(v) for k, v in (await redis.hgetall(keys.state)).items()}
    seconds, micros = (int(part) for part in await redis.time())
    now = token_clock(state, seconds * 1_000_000 + micros)
    in_flight = await redis.zcount(keys.leases, now, "+inf")
    line = (
        f"  {fingerprint}  rate {state.get('rate', 'default')}/s, "
        f"burst {state.get('burst', 'default')}, concurrency {state.get('concurrency', 'default')}"
        f" (in force {state.get('limit', '-')}), in flight {in_flight}"
    )
    fatal = {_text(k): _text(v) for k, v in (await redis.hgetall(keys.fatal)).items()}
    if fatal:
        line += f"; STOPPED: {fatal.get('kind', '')} {fatal.get('message', '')}"
    paused = (float(state.get("pause_until", 0) or 0) - now) / 1e6
    if paused > 0:
        line += f"; paused {paused:.0f} s more"
    return line
