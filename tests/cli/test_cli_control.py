"""The operator's controls of a harvest through Redis, with real processes: ``pause``,
``resume`` and ``cancel``; retention of a finished harvest and ``forget``.

Each test synchronises on events (the simulator's request count, lines a process
prints, exits, a worker's heartbeats in Redis), never on sleeps.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis as redis_sync
from _cluster import (
    TIMEOUT,
    Cluster,
    RequestCount,
    create_harvests,
    expected_items,
    exported_items,
    harvest_id_of,
    only_harvest,
)

from tmapi_async.cli import main
from tmapi_async.testing import SimulatedTmapi

TOKEN = "tok-" + secrets.token_hex(16)


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimulatedTmapi, RequestCount]]:
    count = RequestCount()
    async with SimulatedTmapi(
        tokens={TOKEN}, default_shop_size=100, latency_ms=(150.0, 250.0), on_request=count
    ) as server:
        yield server, count


@pytest.fixture
async def cluster(
    sim: tuple[SimulatedTmapi, RequestCount], redis_url: str
) -> AsyncIterator[Cluster]:
    server, _ = sim
    env = {"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": server.url, "TMAPI_REDIS_URL": redis_url}
    procs = Cluster(env)
    try:
        yield procs
    finally:
        await procs.close()


def _shops(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    names = [f"ctl{i}" for i in range(1, n + 1)]
    path = tmp_path / "shops.txt"
    path.write_text("".join(f"https://{name}.1688.com/\n" for name in names))
    return path, names


def _keys(url: str, hid: str) -> list[bytes]:
    with redis_sync.Redis.from_url(url) as conn:
        return [*conn.scan_iter(match=f"tmapi:h:{hid}*", count=1000)]


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for a condition on Redis (looked at every 20 ms, within TIMEOUT)."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():  # noqa: ASYNC110 (a condition in another process)
            await asyncio.sleep(0.02)


def _beat(url: str, worker: str) -> int:
    with redis_sync.Redis.from_url(url) as conn:
        raw = conn.hget("tmapi:workers", worker)
    return int(raw.split(b" ")[0]) if raw else 0


async def _heartbeats(url: str, worker: str, n: int) -> None:
    """Let ``n`` heartbeats of ``worker`` pass (their Redis time, in seconds, moves on)."""
    first = _beat(url, worker)
    await _until(lambda: _beat(url, worker) >= first + n)


async def _status(cluster: Cluster) -> str:
    process = await cluster.start("status")  # the Redis from TMAPI_REDIS_URL
    assert await process.exit_code() == 0, process.output()
    return process.output()


async def test_a_finished_harvest_expires_and_forget_deletes_it(
    sim: tuple[SimulatedTmapi, RequestCount], cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """Every key a finished harvest left has a TTL and its streams are empty; forget
    then leaves none of its keys. ``--redis`` alone takes TMAPI_REDIS_URL."""
    server, _ = sim
    shops, names = _shops(tmp_path, 6)
    output = tmp_path / "items.jsonl"
    args = ["harvest", str(shops), "--output", str(output), "--redis", "--keep", "2h"]
    coordinator = await cluster.start(*args, "--workers", "1", "--rate", "500")
    assert await coordinator.exit_code() == 0, coordinator.output()
    assert set(exported_items(output)) == expected_items(server, names)
    hid = harvest_id_of(output)
    keys = _keys(redis_url, hid)
    assert len(keys) >= 6 + 5  # a hash per shop, the record, members, streams, counts
    with redis_sync.Redis.from_url(redis_url) as conn:
        for key in keys:
            assert 0 < conn.ttl(key) <= 2 * 3600, key
        assert conn.xlen(f"tmapi:h:{hid}:shops") == 0
        assert conn.xlen(f"tmapi:h:{hid}:results") == 0
        assert not conn.sismember("tmapi:open", hid)
    status = await _status(cluster)
    assert f"{hid}  finished" in status
    assert "coordinator not attached; backlog 0 results not exported" in status
    assert "kept 1h 59m more" in status or "kept 2h 0m more" in status
    # Only the limits given on the command line were set: --rate, not its concurrency.
    assert "rate 500.0/s" in status
    assert "concurrency default" in status

    forget = await cluster.start("forget", hid[:6])  # a unique prefix is enough
    assert await forget.exit_code() == 0, forget.output()
    assert f"harvest {hid} forgotten" in forget.output()
    assert _keys(redis_url, hid) == []
    assert hid not in await _status(cluster)


async def test_forget_refuses_while_a_coordinator_is_attached_unless_forced(
    sim: tuple[SimulatedTmapi, RequestCount], cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """Refused while attached; forced, the keys go, the coordinator stops and a worker
    serving the harvest drops it quietly (and serves on)."""
    _server, requests = sim
    shops, _names = _shops(tmp_path, 4)
    output = tmp_path / "items.jsonl"
    coordinator = await cluster.start(
        "harvest", str(shops), "--output", str(output), "--redis", redis_url, "--workers", "0"
    )

    def attached() -> bool:
        hid = only_harvest(redis_url)
        if hid is None:
            return False
        with redis_sync.Redis.from_url(redis_url) as conn:
            submitted = conn.hget(f"tmapi:h:{hid}:counts", "submitted")
            return bool(conn.exists(f"tmapi:h:{hid}:coordinator")) and submitted == b"4"

    await _until(attached)
    hid = only_harvest(redis_url)
    assert hid is not None
    worker = await cluster.start("worker", "--concurrency", "2", "-v")
    await requests.reach(2)
    pause = await cluster.start("pause", hid)  # it must not finish before the forget
    assert await pause.exit_code() == 0, pause.output()
    await worker.line(f"harvest {hid} paused;")
    assert "coordinator attached" in await _status(cluster)
    refused = await cluster.start("forget", hid)
    assert await refused.exit_code() == 1
    assert "refused: a coordinator is attached" in refused.output()
    assert _keys(redis_url, hid)

    forced = await cluster.start("forget", "--force", hid)
    assert await forced.exit_code() == 0, forced.output()
    assert await coordinator.exit_code() == 3
    assert f"harvest {hid} was forgotten (tmapi-async forget)" in coordinator.output()
    await worker.line(f"harvest {hid} forgotten: dropped")
    await worker.line(f"harvest {hid} forgotten: nothing of it left here")
    assert _keys(redis_url, hid) == []
    assert worker.process.returncode is None  # it serves on
    worker.terminate()
    assert await worker.exit_code() == 0, worker.output()


async def test_pause_resume_cancel_and_a_rerun_that_finishes_once(
    sim: tuple[SimulatedTmapi, RequestCount], cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    """pause holds a harvest (nothing sent), resume lets it go on, cancel ends it (exit 3), a rerun
    finishes it once."""
    server, requests = sim
    shops, names = _shops(tmp_path, 12)  # 5 pages a shop: 60 requests, 2 at a time
    output = tmp_path / "items.jsonl"
    args = ["harvest", str(shops), "--output", str(output), "--redis", redis_url]
    args += ["--workers", "0", "--rate", "1000", "--burst", "50", "-v"]
    coordinator = await cluster.start(*args)
    worker = await cluster.start("worker", "--concurrency", "2", "-v")  # TMAPI_REDIS_URL
    wid = (await worker.line(" serving ")).split()[1]
    await requests.reach(4)
    hid = harvest_id_of(output)

    pause = await cluster.start("pause", hid[:4])
    assert await pause.exit_code() == 0, pause.output()
    assert "open -> paused" in pause.output()
    await worker.line(f"harvest {hid} paused;")
    await worker.line(f"harvest {hid} paused: none of its requests in flight")
    held = requests.count
    await _heartbeats(redis_url, wid, 2)
    assert requests.count == held  # nothing new was sent while paused
    status = await _status(cluster)
    assert f"{hid}  paused" in status
    assert "coordinator attached" in status

    resume = await cluster.start("resume", hid)
    assert await resume.exit_code() == 0, resume.output()
    await worker.line(f"harvest {hid} resumed")
    await requests.reach(held + 2)

    cancel = await cluster.start("cancel", hid)
    assert await cancel.exit_code() == 0, cancel.output()
    assert await coordinator.exit_code() == 3
    assert f"harvest {hid} was cancelled (tmapi-async cancel)" in coordinator.output()
    assert "rerun the same command" in coordinator.output()
    await worker.line(f"harvest {hid} cancelled: dropped")
    assert f"{hid}  cancelled" in await _status(cluster)

    rerun = await cluster.start(*args)
    assert await rerun.exit_code() == 0, rerun.output()
    exported = exported_items(output)
    assert len(exported) == len(set(exported)), "an item was exported twice"
    assert set(exported) == expected_items(server, names)
    worker.terminate()
    assert await worker.exit_code() == 0, worker.output()


def test_a_harvest_is_named_by_its_id_or_a_unique_prefix(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every control takes TMAPI_REDIS_URL without --redis; ambiguous or unknown: exit 2."""
    create_harvests(redis_url, "abc1", "abc2", "fed9")
    monkeypatch.setenv("TMAPI_REDIS_URL", redis_url)
    assert main(["pause", "ab"]) == 2
    assert "'ab' is ambiguous: abc1, abc2" in capsys.readouterr().err
    assert main(["resume", "zz"]) == 2
    assert "no harvest 'zz'" in capsys.readouterr().err
    assert main(["pause", "abc1"]) == 0
    assert "abc1: open -> paused" in capsys.readouterr().out
    assert main(["pause", "abc1"]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "abc1  paused" in out
    assert "abc2  open" in out
    assert main(["resume", "abc1"]) == 0
    assert "paused -> open" in capsys.readouterr().out
    assert main(["cancel", "f"]) == 0
    assert "fed9: open -> cancelled" in capsys.readouterr().out
    assert main(["resume", "fed9"]) == 1  # a cancelled harvest is rerun, not resumed
    assert "fed9 is cancelled: nothing to resume" in capsys.readouterr().err
    assert main(["forget", "fed"]) == 0
    assert "fed9 forgotten" in capsys.readouterr().out
    assert main(["forget", "fed9"]) == 2
    monkeypatch.delenv("TMAPI_REDIS_URL")
    for command in ("pause", "resume", "cancel", "forget"):
        assert main([command, "abc1"]) == 2
        assert "--redis URL or set TMAPI_REDIS_URL" in capsys.readouterr().err
