"""Prometheus metrics: a faulty harvest's counters match its summary, scraped over HTTP
mid-run and at the end; no label holds a URL or a token; registries never collide."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from clirun import TOKEN, cli_env, finish, harvest_args, run_cli, start_cli
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import tmapi_async as tm
from tmapi_async._metrics import OUTCOMES
from tmapi_async._pool import short_fingerprint
from tmapi_async.cli._metrics_http import MetricsOptions, serve_metrics
from tmapi_async.testing import RequestRecord, SimulatedTmapi, SimulatorConfig

FAULTS = ("status", "envelope", "truncated", "html502", "reset")
SHOPS = [f"https://shop{i}.1688.com/" for i in range(12)]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value."""
    return samples[(name, tuple(sorted(labels.items())))]


def no_secrets(text: str, samples: Samples, token: str) -> None:
    """No label names a shop URL or the token; the token is nowhere in the text."""
    assert token not in text
    for _name, labels in samples:
        for _key, label in labels:
            assert token not in label
            assert "1688.com" not in label
            assert "://" not in label


def gate_at(count: int) -> tuple[Callable[[RequestRecord], Awaitable[None]], asyncio.Event]:
    """An ``on_request`` hook holding every request from the ``count``-th on until the
    returned event is set; ``reached`` is set when the ``count``-th arrives."""
    reached, release = asyncio.Event(), asyncio.Event()
    seen = 0

    async def hook(_record: RequestRecord) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            reached.set()
            await release.wait()

    hook.release = release  # type: ignore[attr-defined]
    return hook, reached


async def scrape(port: int) -> str:
    """GET /metrics on the loopback."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def test_faulty_harvest_metrics_match_its_summary() -> None:
    """Scraped mid-run and at the end, the counters match the harvest's own exactly."""
    hook, reached = gate_at(15)
    config = SimulatorConfig(
        fault_rate=0.25,
        fault_kinds=FAULTS,
        seed=7,
        default_shop_size=60,
        failing_shops={"shop3": 1, "shop4": 2},
        on_request=hook,
    )
    metrics = tm.Metrics()
    retry = tm.RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with (
        SimulatedTmapi(config) as sim,
        tm.Client(TOKEN, base_url=sim.url, rate=5000, retry=retry, metrics=metrics) as client,
        serve_metrics(metrics, MetricsOptions(0), lambda _line: None) as port,
    ):
        harvest = client.harvest([*SHOPS, "not a shop"])
        results = asyncio.create_task(_collect(harvest))
        await reached.wait()
        middle = await scrape(port)
        hook.release.set()  # type: ignore[attr-defined]
        finished = await results
        end = await scrape(port)
    progress = harvest.progress
    assert {r.status for r in finished} == {"complete", "partial", "failed"}
    for text in (middle, end):
        no_secrets(text, parse(text), TOKEN)
    fp = short_fingerprint(TOKEN)
    mid = parse(middle)
    assert 15 <= value(mid, "tmapi_requests_billed_total", token=fp) <= client.requests
    assert value(mid, "tmapi_items_total") < progress.items
    samples = parse(end)
    billed = value(samples, "tmapi_requests_billed_total", token=fp)
    assert billed == client.requests == progress.requests == len(sim.log)
    by_outcome = {o: value(samples, "tmapi_requests_total", token=fp, outcome=o) for o in OUTCOMES}
    assert sum(by_outcome.values()) == billed
    assert by_outcome["ok"] == progress.pages_done
    assert by_outcome["upstream"] + by_outcome["transport"] + by_outcome["decode"] > 0
    assert value(samples, "tmapi_retries_total", token=fp) == progress.retries == client.retries
    assert value(samples, "tmapi_request_duration_seconds_count", token=fp) == billed
    assert value(samples, "tmapi_admission_wait_seconds_count", token=fp) == billed
    assert value(samples, "tmapi_items_total") == progress.items
    assert value(samples, "tmapi_pages_total") == progress.pages_done
    for status in ("complete", "partial", "failed"):
        shops = value(samples, "tmapi_shops_total", status=status)
        assert shops == getattr(progress, f"shops_{status}") > 0
    assert value(samples, "tmapi_requests_in_flight", token=fp) == 0
    assert 1 <= value(samples, "tmapi_inflight_limit", token=fp) <= client.concurrency
    assert value(samples, "tmapi_token_retired", token=fp) == 0


async def _collect(harvest: tm.Harvest) -> list[tm.ShopResult]:
    return [result async for result in harvest]


async def test_two_registries_in_one_process_do_not_collide() -> None:
    """Two clients, each with its own registry, count only their own requests."""
    mine, theirs = CollectorRegistry(), CollectorRegistry()
    async with SimulatedTmapi(SimulatorConfig(default_shop_size=40)) as sim:
        for registry, token, shops in ((mine, "tok-one-aaaa", 1), (theirs, "tok-two-bbbb", 3)):
            metrics = tm.Metrics(registry=registry)
            assert metrics.registry is registry
            async with tm.Client(token, base_url=sim.url, rate=5000, metrics=metrics) as client:
                async for _ in client.harvest(SHOPS[:shops]):
                    pass
    one = registry_samples(mine)
    two = registry_samples(theirs)
    assert value(one, "tmapi_requests_billed_total", token=short_fingerprint("tok-one-aaaa")) == 2
    assert value(two, "tmapi_requests_billed_total", token=short_fingerprint("tok-two-bbbb")) == 6
    assert value(one, "tmapi_shops_total", status="complete") == 1
    assert value(two, "tmapi_shops_total", status="complete") == 3
    assert not any("tok-one" in str(key) or "tok-two" in str(key) for key in [*one, *two])


def registry_samples(registry: CollectorRegistry) -> Samples:
    """The samples of a registry, as a scrape would read them."""
    from prometheus_client import generate_latest

    return parse(generate_latest(registry).decode())


async def test_a_pool_labels_each_token_by_fingerprint() -> None:
    """A pool's tokens each get their own series, named by fingerprint only."""
    tokens = ["tok-pool-first-1", "tok-pool-second-2"]
    metrics = tm.Metrics()
    async with (
        SimulatedTmapi(SimulatorConfig(default_shop_size=40)) as sim,
        tm.TokenPool(tokens, base_url=sim.url, rate=5000, metrics=metrics) as pool,
    ):
        async for _ in pool.harvest(SHOPS[:6]):
            pass
    text = metrics.exposition().decode()
    samples = parse(text)
    billed = [
        value(samples, "tmapi_requests_billed_total", token=short_fingerprint(t)) for t in tokens
    ]
    assert sum(billed) == pool.requests == 12
    assert value(samples, "tmapi_shops_total", status="complete") == 6
    for token in tokens:
        no_secrets(text, samples, token)


async def test_cli_harvest_serves_metrics_mid_run(tmp_path: Path) -> None:
    """``harvest --metrics-port 0`` prints where /metrics is; scraped while requests are
    held at the simulator, it tells the requests and shops so far, and no token."""
    hook, reached = gate_at(8)
    config = SimulatorConfig(
        fault_rate=0.2, fault_kinds=FAULTS, seed=3, default_shop_size=60, on_request=hook
    )
    shops = tmp_path / "shops.txt"
    shops.write_text("\n".join([*SHOPS[:6], "not a shop"]) + "\n", encoding="utf-8")
    async with SimulatedTmapi(config) as sim:
        args = harvest_args(sim, shops, tmp_path / "out.jsonl", "--metrics-port", "0")
        proc = await start_cli(*args, "--auth", "query")
        assert proc.stderr is not None
        line = (await proc.stderr.readline()).decode()
        assert line.startswith("metrics: http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        await reached.wait()
        text = await scrape(port)
        hook.release.set()  # type: ignore[attr-defined]
        run = await finish(proc)
    assert run.code == 1, run.err  # the invalid line failed
    samples = parse(text)
    no_secrets(text, samples, TOKEN)
    fp = short_fingerprint(TOKEN)
    assert 8 <= value(samples, "tmapi_requests_billed_total", token=fp) <= len(sim.log)
    assert value(samples, "tmapi_shops_total", status="failed") == 1
    assert f"requests: {len(sim.log)} billed" in run.out


async def test_metrics_port_without_the_extra_is_a_usage_error(tmp_path: Path) -> None:
    """Without prometheus_client, --metrics-port exits 2 naming the extra to install."""
    blocked = tmp_path / "blocked" / "prometheus_client"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = cli_env()
    env["PYTHONPATH"] = f"{blocked.parent}:{env['PYTHONPATH']}"
    shops = tmp_path / "shops.txt"
    shops.write_text(SHOPS[0] + "\n", encoding="utf-8")
    for command in (
        ["harvest", str(shops), "-o", str(tmp_path / "out.jsonl"), "--metrics-port", "9100"],
        ["worker", "--redis", "redis://127.0.0.1:1/0", "--metrics-port", "9100"],
    ):
        run = await run_cli(*command, env=env)
        assert run.code == 2, run.err
        assert "pip install 'tmapi-async[metrics]'" in run.err


def test_nothing_is_imported_without_metrics() -> None:
    """A client without metrics never imports prometheus_client."""
    code = (
        "import sys, tmapi_async as tm; tm.Client('t'); tm.TokenPool('a,b'); "
        "import tmapi_async.cli.harvest; "
        "assert 'prometheus_client' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=cli_env())


def test_metrics_without_prometheus_client_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tm.Metrics()`` without the extra raises an ImportError naming it."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"tmapi-async\[metrics\]"):
        tm.Metrics()


async def test_a_closed_clients_counts_stay_and_the_client_is_let_go() -> None:
    """Counters never go back when a client closes; a new client of the token adds on."""
    metrics = tm.Metrics()
    fp = short_fingerprint(TOKEN)
    async with SimulatedTmapi(SimulatorConfig(default_shop_size=40)) as sim:
        for expected in (2, 4):
            async with tm.Client(TOKEN, base_url=sim.url, metrics=metrics) as client:
                await client.fetch_shop(SHOPS[0])
            samples = registry_samples(metrics.registry)
            assert value(samples, "tmapi_requests_billed_total", token=fp) == expected
            assert value(samples, "tmapi_requests_total", token=fp, outcome="ok") == expected
    assert "clients=0" in repr(metrics)


def test_a_registry_refuses_a_second_metrics() -> None:
    """Two Metrics on one registry would expose every series twice: refused at once."""
    registry = CollectorRegistry()
    tm.Metrics(registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        tm.Metrics(registry=registry)
