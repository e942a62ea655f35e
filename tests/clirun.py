"""Running the ``tmapi-async`` command line as a subprocess, for the tests that do."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import tmapi_async
from tmapi_async.testing import SimulatedTmapi

REPO = Path(tmapi_async.__file__).resolve().parent.parent
TOKEN = "tok-SECRET-5f1e2d"  # distinctive, so any leak is found by a plain search


def cli_env(token: str | None = TOKEN) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout importable, no stray TMAPI_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMAPI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if token is not None:
        env["TMAPI_TOKEN"] = token
    return env


@dataclass
class Run:
    """A finished CLI run."""

    code: int
    out: str
    err: str


async def start_cli(
    *args: str, env: dict[str, str] | None = None, stdin: bool = False
) -> asyncio.subprocess.Process:
    """Start ``python -m tmapi_async ARGS`` (with ``cli_env()`` unless ``env`` is given)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tmapi_async",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else cli_env(),
    )


async def finish(proc: asyncio.subprocess.Process, stdin: bytes | None = None) -> Run:
    """Wait for a CLI run to end; its exit code and output."""
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Run:
    """Run the CLI to the end."""
    return await finish(await start_cli(*args, env=env, stdin=stdin is not None), stdin)


def harvest_args(sim: SimulatedTmapi, shops: Path, output: Path, *extra: str) -> list[str]:
    """Arguments of a fast harvest against ``sim``."""
    return [
        "harvest",
        str(shops),
        "--output",
        str(output),
        "--base-url",
        sim.url,
        "--rate",
        "2000",
        "--concurrency",
        "4",
        "--timeout",
        "10",
        *extra,
    ]
