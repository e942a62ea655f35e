"""``--log-format json``: every stderr line of a harvest is one JSON object, with its
time, level and event, and no line holds the token, however the key is sent."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from clirun import TOKEN, harvest_args, run_cli

from tmapi_async.testing import SimulatedTmapi, SimulatorConfig

FAULTS = ("status", "envelope", "truncated", "html502", "reset")
SHOPS = [f"https://shop{i}.1688.com/" for i in range(8)]


@pytest.mark.parametrize("auth", ["header", "query"])
async def test_a_faulty_harvest_logs_json_lines_without_the_token(
    tmp_path: Path, auth: str
) -> None:
    """Each line parses; shops, retries and the summary are events; no token anywhere."""
    config = SimulatorConfig(
        fault_rate=0.2, fault_kinds=FAULTS, seed=11, default_shop_size=60, auth=auth
    )
    shops = tmp_path / "shops.txt"
    # A line holding the token: quoted back in the failure, it must be scrubbed.
    shops.write_text("\n".join([*SHOPS, f"https://x.example/?apiToken={TOKEN}"]) + "\n")
    async with SimulatedTmapi(config) as sim:
        args = harvest_args(sim, shops, tmp_path / "out.jsonl", "--auth", auth)
        run = await run_cli(*args, "--log-format", "json", "-v")
    assert run.code == 1, run.err  # the odd line failed
    lines = run.err.splitlines()
    assert lines
    events = [json.loads(line) for line in lines]
    assert TOKEN not in run.err
    for line in events:
        assert {"time", "level", "event"} <= line.keys()
        datetime.datetime.fromisoformat(line["time"])
        assert line["level"] in {"debug", "info", "warning", "error"}
    shops_done = [e for e in events if e["event"] == "shop_finished"]
    assert sorted(e["status"] for e in shops_done) == ["complete"] * len(SHOPS) + ["failed"]
    assert {e["shop"] for e in shops_done} >= set(SHOPS)
    assert any("retrying" in e.get("message", "") for e in events)  # -v: the retries
    (summary,) = [e for e in events if e["event"] == "harvest_finished"]
    assert summary["requests"] == len(sim.log)
    assert summary["shops_complete"] == len(SHOPS)
    assert summary["elapsed_s"] > 0
    assert summary["retries"] > 0


async def test_text_stays_the_default(tmp_path: Path) -> None:
    """Without the flag, stderr is text for a person, as before."""
    shops = tmp_path / "shops.txt"
    shops.write_text(SHOPS[0] + "\n")
    async with SimulatedTmapi(SimulatorConfig(default_shop_size=20)) as sim:
        run = await run_cli(*harvest_args(sim, shops, tmp_path / "out.jsonl"), "-v")
    assert run.code == 0, run.err
    assert not run.err.lstrip().startswith("{")
