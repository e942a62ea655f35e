"""A real ``redis-server`` for the Redis tests (a plugin of ``tests/conftest.py``):
started on a free loopback port with persistence off the first time a test asks for it,
emptied before each test, stopped at the end.

Fixtures:

- ``redis_server``: (session) the URL of the running server, ``redis://127.0.0.1:PORT/0``;
- ``redis_url``: (per test) the same URL after a ``FLUSHALL``, so each test starts empty.

Outside CI a machine without ``redis-server`` skips these tests with the reason; with
``CI`` set in the environment they fail instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

_START_TIMEOUT = 20.0  # seconds for the server to answer PING (generous: CI is busy)
_STOP_TIMEOUT = 10.0


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine, fail in CI: the Redis tests must run there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the Redis tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as log:
            return log.read()[-2000:]
    except OSError:
        return "(no log)"


def _start(binary: str, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server; retry on another port if one was taken between probe and bind."""
    for _ in range(5):
        port = _free_port()
        log = os.path.join(workdir, f"redis-{port}.log")
        process = subprocess.Popen(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", workdir,
                "--protected-mode", "yes",
                "--logfile", log,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _answers_ping(port):
                return process, port
            time.sleep(0.02)  # polling with a bound: the server has no readiness signal
        if process.poll() is None:
            process.kill()
        process.wait(timeout=_STOP_TIMEOUT)
        output = _tail(log)
        if "Address already in use" not in output:
            raise RuntimeError(
                f"redis-server did not answer PING within {_START_TIMEOUT:.0f} s:\n{output}"
            )
    raise RuntimeError("redis-server found no free port in 5 tries")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """Start a private ``redis-server`` for the session; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (apt-get install redis-server)")
        return
    try:
        import redis  # noqa: F401  (the extra the tests exercise)
    except ImportError:
        _unavailable("redis-py is not installed (pip install 'tmapi-async[redis]')")
        return
    with tempfile.TemporaryDirectory(prefix="tmapi-redis-") as workdir:
        process, port = _start(binary, workdir)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's server, emptied: each test starts without the keys of the last."""
    import redis

    with redis.Redis.from_url(redis_server) as conn:
        conn.flushall()
    return redis_server
