"""``tmapi-async dashboard``: headless Chromium renders the page over a live harvest of
two workers (the harvest, both workers, the token's limits); beyond loopback, a password
is required."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import shutil
from pathlib import Path

import aiohttp
from _cluster import TIMEOUT, Cluster, only_harvest
from clirun import cli_env, run_cli

from tmapi_async._pool import short_fingerprint
from tmapi_async.testing import RequestRecord, SimulatedTmapi

TOKEN = "tok-" + secrets.token_hex(16)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Set to a path to keep the test's screenshot of the page (the documentation's picture).
SCREENSHOT_ENV = "TMAPI_DASHBOARD_PNG"


async def _chromium(*args: str) -> bytes:
    """Run headless Chromium on the loopback; its stdout."""
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0
    return out


async def test_chromium_renders_a_live_two_worker_harvest(redis_url: str, tmp_path: Path) -> None:
    """Mid-harvest, the rendered page names the harvest, both workers and the limits."""
    held, release = asyncio.Event(), asyncio.Event()
    seen = 0

    async def hold(_record: RequestRecord) -> None:
        nonlocal seen
        seen += 1
        if seen >= 20:
            held.set()
            await release.wait()

    shops = tmp_path / "shops.txt"
    shops.write_text("".join(f"https://shop{i}.1688.com/\n" for i in range(30)))
    output = tmp_path / "items.jsonl"
    async with SimulatedTmapi(tokens={TOKEN}, default_shop_size=60, on_request=hold) as sim:
        cluster = Cluster({"TMAPI_TOKEN": TOKEN, "TMAPI_BASE_URL": sim.url})
        try:
            harvest = await cluster.start(
                "harvest", str(shops), "-o", str(output), "--redis", redis_url,
                "--workers", "2", "--rate", "40", "--burst", "5", "--concurrency", "6", "-v",
            )  # fmt: skip
            await held.wait()
            ready = [await harvest.line(" ready")]
            ready.append(await _second(harvest, " ready", ready[0]))
            workers = [re.search(r"worker (\S+) ready", line).group(1) for line in ready]  # type: ignore[union-attr]
            board = await cluster.start("dashboard", "--redis", redis_url, "--port", "0")
            url = (await board.line("dashboard: http://")).split(": ", 1)[1]
            assert url.startswith("http://127.0.0.1:")
            dom = (await _chromium("--dump-dom", url)).decode()
            picture = tmp_path / "dashboard.png"
            await _chromium(f"--screenshot={picture}", "--window-size=1280,760", url)
            release.set()
            assert await harvest.exit_code() == 0, harvest.output()
            board.terminate()
            assert await board.exit_code() == 0, board.output()
        finally:
            release.set()
            await cluster.close()
    hid = only_harvest(redis_url)
    assert hid is not None
    assert hid in dom
    for worker in workers:
        assert worker in dom
    fingerprint = short_fingerprint(TOKEN)[:8]
    assert fingerprint in dom
    (row,) = [row for row in re.findall(r"<tr>(.*?)</tr>", dom) if fingerprint in row]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[0] == fingerprint
    assert float(cells[1].removesuffix("/s")) == 40  # rate
    assert cells[2:4] == ["5", "6"]  # burst, concurrency
    assert re.fullmatch(r"[1-6]", cells[4])  # the adaptive limit in force
    assert TOKEN not in dom
    assert 'http-equiv="refresh"' in dom
    assert "<script" not in dom
    assert "<svg" in dom or "chart fills" in dom
    assert picture.read_bytes().startswith(b"\x89PNG")
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(picture, os.environ[SCREENSHOT_ENV])


async def _second(process: object, text: str, first: str) -> str:
    """The second line holding ``text`` (the first is ``first``)."""
    finder = process  # a _cluster.Process
    while True:
        found = [line for line in finder.lines if text in line and line != first]  # type: ignore[attr-defined]
        if found:
            return found[0]
        finder._changed.clear()  # type: ignore[attr-defined]
        if [line for line in finder.lines if text in line and line != first]:  # type: ignore[attr-defined]
            continue
        await asyncio.wait_for(finder._changed.wait(), TIMEOUT)  # type: ignore[attr-defined]


async def test_beyond_loopback_a_password_is_required(redis_url: str) -> None:
    """--bind 0.0.0.0 without a password exits 2; with one, a request without it gets
    401 (traffic only to 127.0.0.1), with it the page and the JSON."""
    refused = await run_cli("dashboard", "--redis", redis_url, "--bind", "0.0.0.0")
    assert refused.code == 2
    assert "password" in refused.err
    password = "pw-" + secrets.token_hex(8)
    cluster = Cluster(cli_env(None))
    try:
        board = await cluster.start(
            "dashboard", "--redis", redis_url, "--bind", "0.0.0.0", "--port", "0",
            "--password", password,
        )  # fmt: skip
        line = await board.line("dashboard: http://")
        assert password not in board.output()
        port = int(re.search(r":(\d+)/", line).group(1))  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        good = {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"me:wrong").decode()}
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/api/status", "/metrics"):
                async with session.get(base + path) as response:
                    assert response.status == 401
                    assert "Basic" in response.headers["WWW-Authenticate"]
                async with session.get(base + path, headers=bad) as response:
                    assert response.status == 401
            async with session.get(base + "/", headers=good) as response:
                assert response.status == 200
                assert "tmapi-async" in await response.text()
            async with session.get(base + "/api/status", headers=good) as response:
                status = await response.json()
                assert status["redis_up"] is True
            async with session.get(base + "/metrics", headers=good) as response:
                assert response.status == 200
                assert "tmapi_workers_alive" in await response.text()
        board.terminate()
        assert await board.exit_code() == 0, board.output()
    finally:
        await cluster.close()
