"""``tmapi-async simulate``: the simulator as a command."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from clirun import start_cli


async def test_simulate_subcommand_prints_its_url_first(tmp_path: Path) -> None:
    """``tmapi-async simulate`` serves until SIGTERM and prints its URL on line 1."""
    proc = await start_cli("simulate", "--port", "0")
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line.decode().startswith("http://127.0.0.1:")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
