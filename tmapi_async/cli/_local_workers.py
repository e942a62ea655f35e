"""Worker processes on the coordinator's machine: what ``harvest --workers N`` starts.

Each is a ``tmapi-async worker`` process; the token and the Redis URL reach them
through their environment, never argv (argv shows in every process list). They stop
when their stdin closes, so they never outlive the harvest that started them, even
one killed with -9.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["LocalWorkers"]

_WORKER_STOP: Final = 10.0  # seconds a local worker gets to stop before it is killed


class LocalWorkers:
    """``count`` worker processes on this machine (``tmapi-async worker``).

    The token and the Redis URL reach them through their environment, never argv
    (argv shows in every process list).
    """

    def __init__(
        self, count: int, *, env: Mapping[str, str], args: Sequence[str] = (), quiet: bool = True
    ) -> None:
        self._count = count
        self._env = {**os.environ, **env, "TMAPI_WORKER_PARENT": "stdin"}
        self._args = list(args)
        self._quiet = quiet
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        command = ["-m", "tmapi_async", "worker", *self._args]
        output = subprocess.DEVNULL if self._quiet else None
        for _ in range(self._count):
            # The worker's stdin stays open while this process lives: it stops at EOF.
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *command,
                env=self._env,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
            )
            self.processes.append(process)

    async def stop(self) -> None:
        """SIGTERM each (they hand their shops back), kill those still there after 10 s."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), _WORKER_STOP)
            except TimeoutError:
                process.kill()
                await process.wait()
