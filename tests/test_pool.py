"""Several tokens in one harvest: ``TokenPool`` and ``TMAPI_TOKEN="A,B,C"`` on the
command line, checked against what the simulator's request log says the server saw."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from clirun import Run, cli_env
from clirun import harvest_args as fast_harvest
from clirun import run_cli as run_to_end

import tmapi_async
from tmapi_async import (
    Answer,
    AuthenticationError,
    BalanceError,
    FatalError,
    HarvestStopped,
    MockTransport,
    RedisUnavailableError,
    RequestBudgetExhausted,
    RetryPolicy,
    Throttle,
    TokenPool,
)
from tmapi_async._pool import short_fingerprint, split_tokens
from tmapi_async.testing import RequestRecord, SimulatedTmapi, fingerprint

# Distinctive, so that a leak is found by a plain search of every output and file.
A, B, C = "tokA-SECRET-3f9e1c7b", "tokB-SECRET-8a6d4e2f", "tokC-SECRET-1b5c9d3e"
TOKENS = (A, B, C)
REPO = Path(tmapi_async.__file__).resolve().parent.parent
SHOP_COUNT = 30  # of 100 items: 150 pages of 20, well past A's balance of 40
SHOPS = [f"https://pool{i}.1688.com/" for i in range(SHOP_COUNT)]


def of(token: str, records: list[RequestRecord]) -> list[RequestRecord]:
    """The requests the server saw with ``token``, in arrival order."""
    return [r for r in records if r.token_fp == fingerprint(token)]


def after_first_refusal(token: str, records: list[RequestRecord]) -> list[RequestRecord]:
    """``token``'s requests that arrived after its first 439."""
    mine = of(token, records)
    first = next(i for i, r in enumerate(mine) if r.outcome == "quota_exceeded")
    return mine[first + 1 :]


def ok_per_page(records: list[RequestRecord]) -> Counter[tuple[str | None, int | None]]:
    """Pages answered (and so paid for with items), each counted per answer."""
    return Counter((r.shop, r.page) for r in records if r.outcome == "ok")


def expected_ids(sim: SimulatedTmapi, shops: list[str]) -> Counter[tuple[str, str]]:
    """Every (shop URL without its slash, item id) the simulator holds for ``shops``."""
    return Counter((s.rstrip("/"), i.item_id) for s in shops for i in sim.expected_items(s))


async def harvest_ids(pool: TokenPool, shops: list[str]) -> Counter[tuple[str, str]]:
    """Every (shop, item) a library harvest yields, counted."""
    seen: Counter[tuple[str, str]] = Counter()
    async for result in pool.harvest(shops):
        assert result.status == "complete", result
        seen.update((result.shop_url.rstrip("/"), item.item_id) for item in result.items)
    return seen


def sim_of(**knobs: object) -> SimulatedTmapi:
    """Shops of 100 items; each token allowed 3 requests in flight; a little latency so
    that requests overlap."""
    settings: dict[str, object] = {
        "default_shop_size": 100,
        "concurrency_limit": 3,
        "latency_ms": (5.0, 15.0),
    }
    settings.update(knobs)
    return SimulatedTmapi(**settings)  # type: ignore[arg-type]


# -- tokens from text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "tokens"),
    [
        ("a", ["a"]),
        ("a,b,c", ["a", "b", "c"]),
        (" a , b\nc\td ", ["a", "b", "c", "d"]),
        ("a,,b,a", ["a", "b"]),
        (["a,b", "c", "b"], ["a", "b", "c"]),
        ("", []),
        (None, []),
    ],
)
def test_split_tokens(given: str | list[str] | None, tokens: list[str]) -> None:
    """Commas or whitespace separate tokens; each token once, in order."""
    assert split_tokens(given) == tokens


def test_short_fingerprint_names_no_character_of_the_token() -> None:
    """8 hex digits of the keyed hash; different tokens, different names."""
    names = {short_fingerprint(t) for t in TOKENS}
    assert len(names) == 3
    for name in names:
        assert len(name) == 8
        assert int(name, 16) >= 0


def test_pool_takes_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TMAPI_TOKEN="A, B C"`` is three tokens; the repr names them by fingerprint only."""
    monkeypatch.setenv("TMAPI_TOKEN", f"{A}, {B} {C}")
    pool = TokenPool(concurrency=3)
    assert [u.fingerprint for u in pool.tokens] == [short_fingerprint(t) for t in TOKENS]
    assert pool.concurrency == 9  # limits are per token
    assert all(t not in repr(pool) for t in TOKENS)


def test_pool_refuses_no_token_and_limits_beside_a_throttle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No token is an AuthenticationError; limits belong to the throttle factory given."""
    monkeypatch.delenv("TMAPI_TOKEN", raising=False)
    with pytest.raises(AuthenticationError):
        TokenPool(" , ")
    with pytest.raises(tmapi_async.InvalidParameterError):
        TokenPool([A, B], rate=5, throttle=lambda t: Throttle(rate=1, concurrency=1))
    with pytest.raises(tmapi_async.InvalidParameterError):
        TokenPool([A, B], concurrency=0)


# -- the library --------------------------------------------------------------------------


# Answers without a socket, for what depends on the order of events.

SHOP = "https://mock.1688.com/"
GENEROUS = 60.0  # seconds: answers expected to arrive (CI is two busy cores)


def asked(query: str) -> int:
    """The page a query asks for."""
    return int(parse_qs(query)["page"][0])


def page_answer(query: str, total: int) -> Answer:
    """A 200 answer with the page ``query`` asks for of a shop of ``total`` products."""
    fields = parse_qs(query)
    shop, page = fields["shop_url"][0], int(fields["page"][0])
    items = [{"item_id": f"{shop}-{i}"} for i in range((page - 1) * 20, min(total, page * 20))]
    data = {"page": page, "page_size": 20, "total_count": total, "items": items}
    return 200, {}, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


def error_answer(status: int) -> Answer:
    body = {"code": status, "msg": f"error {status}", "data": None}
    return status, {}, json.dumps(body).encode()


@pytest.mark.parametrize(
    "error",
    [BalanceError("spent, as another process saw", code=439), RedisUnavailableError("gone")],
    ids=["its-own-error", "not-the-tokens-error"],
)
async def test_a_page_in_backoff_on_a_token_that_retires_goes_to_another(
    error: FatalError,
) -> None:
    """A's page waits in a retry backoff when A is stopped from elsewhere: a 439 moves
    the page to B at once; an error that is not the token's (Redis gone) stops all."""
    backing_off = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        backing_off.set()
        await asyncio.Event().wait()  # ends only if the token is stopped

    gates: dict[str, Throttle] = {}
    sent: dict[str, list[int]] = {A: [], B: []}

    def gate(token: str) -> Throttle:
        gates[token] = Throttle(rate=1000, concurrency=1)
        return gates[token]

    def transport(token: str) -> MockTransport:
        def answer(query: str) -> Answer:
            sent[token].append(asked(query))
            return error_answer(500) if token == A else page_answer(query, total=60)

        return MockTransport(answer)

    pool = TokenPool(
        [A, B], throttle=gate, transport=transport, retry=RetryPolicy(attempts=3, sleep=sleep)
    )
    async with pool:
        fetch = asyncio.create_task(pool.fetch_shop(SHOP))
        await asyncio.wait_for(backing_off.wait(), GENEROUS)
        gates[A].fail(error)
        if isinstance(error, BalanceError):
            result = await asyncio.wait_for(fetch, GENEROUS)
            assert (result.status, result.item_count) == ("complete", 60)
            assert sent == {A: [1], B: [1, 2, 3]}
            assert pool.tokens[0].retired is error
            assert pool.fatal is None
        else:
            with pytest.raises(RedisUnavailableError):
                await asyncio.wait_for(fetch, GENEROUS)
            assert sent == {A: [1], B: []}
            assert pool.fatal is error


async def test_pages_in_flight_on_a_token_that_runs_dry_are_fetched_again() -> None:
    """A holds two pages when its balance ends (439 for both): both are fetched again
    through B, every page is answered once, nothing more is sent with A."""
    both = asyncio.Event()
    sent: dict[str, list[int]] = {A: [], B: []}

    def transport(token: str) -> MockTransport:
        async def answer(query: str) -> Answer:
            sent[token].append(asked(query))
            if token == B:
                return page_answer(query, total=50)
            if len(sent[A]) == 2:
                both.set()
            await both.wait()  # A answers once it holds two requests
            return error_answer(439)

        return MockTransport(answer)

    limits = {A: 3, B: 1}  # A has the most free slots: both first pages go to it
    pool = TokenPool(
        [A, B],
        auth="query",  # auto would hold A's second page until its first settles the scheme
        throttle=lambda token: Throttle(rate=1000, concurrency=limits[token]),
        transport=transport,
    )
    shops = ["https://one.1688.com/", "https://two.1688.com/"]
    async with pool:
        results = [r async for r in pool.harvest(shops)]
    assert sorted((r.status, r.item_count) for r in results) == [("complete", 50)] * 2
    assert sent[A] == [1, 1]
    assert sorted(sent[B]) == [1, 1, 2, 2, 3, 3]  # each page once
    assert isinstance(pool.tokens[0].retired, BalanceError)
    assert [u.requests for u in pool.tokens] == [2, 6]


# Against the simulator: what the server saw.


async def test_a_token_out_of_balance_retires_and_the_others_finish() -> None:
    """A's balance ends after 40 requests: A retires, nothing more is sent with it than
    was in flight, its pages are fetched by B and C, every item comes once."""
    async with sim_of(quotas={A: 40}) as sim:
        async with TokenPool(TOKENS, base_url=sim.url, rate=2000, concurrency=3) as pool:
            seen = await harvest_ids(pool, SHOPS)
        records = sim.log.records
        assert seen == expected_ids(sim, SHOPS)
        for token in TOKENS:
            assert sim.log.peak_in_flight(token) <= 3
        late = after_first_refusal(A, records)
        assert len(late) <= 2  # at most the other requests A had in flight
        assert {r.outcome for r in late} <= {"quota_exceeded"}
        assert set(ok_per_page(records).values()) == {1}  # no page paid for twice
        usage = {u.fingerprint: u for u in pool.tokens}
        assert isinstance(usage[short_fingerprint(A)].retired, BalanceError)
        assert usage[short_fingerprint(B)].retired is None
        for token in TOKENS:  # requests billed per token, as the server counted them
            assert usage[short_fingerprint(token)].requests == len(of(token, records))
        assert pool.requests == len(records)
        assert pool.fatal is None


async def test_healthy_tokens_share_the_work_of_one_shop() -> None:
    """One shop's pages are spread over every token; each stays within its own limit."""
    async with sim_of(shop_sizes={"big": 600}) as sim:
        async with TokenPool(TOKENS, base_url=sim.url, rate=2000, concurrency=3) as pool:
            seen = await harvest_ids(pool, [sim.shop_url("big")])
        assert seen == expected_ids(sim, [sim.shop_url("big")])
        for token in TOKENS:
            assert len(of(token, sim.log.records)) >= 3
            assert sim.log.peak_in_flight(token) <= 3
        assert sim.log.peak_in_flight() > 3  # more in flight than one token may hold
        assert sim.log.count_by_outcome() == Counter({"ok": 30})


async def test_when_every_token_retires_the_harvest_stops() -> None:
    """A refused token and one out of balance: the pool stops with the last error."""
    async with sim_of(tokens={B}, quotas={B: 10}) as sim:
        async with TokenPool([A, B], base_url=sim.url, rate=2000, concurrency=3) as pool:
            with pytest.raises((AuthenticationError, BalanceError)):
                await harvest_ids(pool, SHOPS)
        assert isinstance(pool.fatal, (AuthenticationError, BalanceError))
        retired = {u.fingerprint: u.retired for u in pool.tokens}
        assert isinstance(retired[short_fingerprint(A)], AuthenticationError)
        assert isinstance(retired[short_fingerprint(B)], BalanceError)
        assert len(of(A, sim.log.records)) <= 3  # nothing after its first 401 answer
        assert len(after_first_refusal(B, sim.log.records)) <= 2


async def test_max_requests_counts_across_tokens() -> None:
    """A budget of 25 is 25 requests at the server in all, whatever the tokens."""
    async with sim_of() as sim:
        async with TokenPool(
            TOKENS, base_url=sim.url, rate=2000, concurrency=3, max_requests=25
        ) as pool:
            with pytest.raises(RequestBudgetExhausted):
                await harvest_ids(pool, SHOPS)
        assert len(sim.log) == 25
        assert pool.requests == 25
        assert sum(u.requests for u in pool.tokens) == 25
        assert sum(1 for u in pool.tokens if u.requests) > 1


async def test_stop_ends_every_token() -> None:
    """A stop of the harvest stops the pool: nothing more is sent with any token."""
    async with sim_of() as sim:
        async with TokenPool(TOKENS, base_url=sim.url, rate=2000, concurrency=3) as pool:
            harvest = pool.harvest(SHOPS)

            async def stop_at_the_first_shop() -> None:
                async for _ in harvest:
                    harvest.stop()

            with pytest.raises(HarvestStopped):
                await stop_at_the_first_shop()
            sent = len(sim.log)
            assert isinstance(pool.fatal, HarvestStopped)
            with pytest.raises(HarvestStopped):
                await pool.fetch_shop(SHOPS[-1])
        assert len(sim.log) == sent


async def test_a_page_and_a_shop_through_a_pool() -> None:
    """The client's other reads work through a pool as through one token."""
    async with sim_of() as sim:
        async with TokenPool([A, B], base_url=sim.url, rate=2000, concurrency=2) as pool:
            page = await pool.get_shop_items(SHOPS[0], page=2)
            shop = await pool.fetch_shop(SHOPS[1])
            items = [item async for item in pool.iter_shop_items(SHOPS[2])]
        assert page.page == 2
        assert shop.item_count == 100
        assert len(items) == 100


# -- the command line ---------------------------------------------------------------------


async def run_cli(*args: str, token: str | None) -> Run:
    """Run the CLI to the end with ``TMAPI_TOKEN=token`` (none if None)."""
    return await run_to_end(*args, env=cli_env(token))


def harvest_args(sim: SimulatedTmapi, shops: Path, output: Path, *extra: str) -> list[str]:
    """A fast harvest with three requests in flight per token (the last flag wins)."""
    return fast_harvest(sim, shops, output, "--concurrency", "3", "--timeout", "20", *extra)


def write_shops(path: Path, shops: list[str]) -> Path:
    path.write_text("".join(f"{shop}\n" for shop in shops), encoding="utf-8")
    return path


def export_ids(path: Path) -> Counter[tuple[str, str]]:
    rows = map(json.loads, path.read_text(encoding="utf-8").splitlines())
    return Counter((row["shop_url"].rstrip("/"), row["item_id"]) for row in rows)


def assert_no_token_anywhere(run: Run, directory: Path) -> None:
    """No token on stdout or stderr, nor in any file but the shop list."""
    files = [p for p in directory.iterdir() if p.name != "shops.txt"]
    for token in TOKENS:
        assert token not in run.out
        assert token not in run.err
        for path in files:
            assert token.encode() not in path.read_bytes(), path.name


async def test_cli_three_tokens_one_runs_dry_exit_0(tmp_path: Path) -> None:
    """``TMAPI_TOKEN="A,B,C" harvest --concurrency 3``: A's balance ends after 40
    requests; the harvest ends 0 with every item once, at most 3 in flight per token at
    the server, A unused after its 439 beyond what was in flight, no token anywhere,
    and the summary names A by fingerprint with the reason and the requests per token."""
    async with sim_of(quotas={A: 40}) as sim:
        shops = write_shops(tmp_path / "shops.txt", SHOPS)
        out = tmp_path / "items.jsonl"
        run = await run_cli(*harvest_args(sim, shops, out), token=",".join(TOKENS))
        records = sim.log.records
        assert run.code == 0, run.err
        assert export_ids(out) == expected_ids(sim, SHOPS)
        for token in TOKENS:
            assert sim.log.peak_in_flight(token) <= 3
        late = after_first_refusal(A, records)
        assert len(late) <= 2
        assert {r.outcome for r in late} <= {"quota_exceeded"}
        assert set(ok_per_page(records).values()) == {1}
        written = {"items.jsonl.state.db", "items.jsonl.manifest.json"}
        assert all((tmp_path / name).exists() for name in written)
        assert_no_token_anywhere(run, tmp_path)
        assert f"token {short_fingerprint(A)}: 4" in run.out  # 40 and its refusals
        retired = [line for line in run.out.splitlines() if "retired" in line]
        assert len(retired) == 1
        assert short_fingerprint(A) in retired[0]
        assert "balance" in retired[0]
        assert "2 of 3 in service" in run.out
        for token in (B, C):
            billed = len(of(token, records))
            assert f"token {short_fingerprint(token)}: {billed:,} requests" in run.out


async def test_cli_every_token_retired_exit_3_then_resume(tmp_path: Path) -> None:
    """Both tokens run dry: exit 3, resumable; a rerun with a fresh token finishes the
    export with every item once and no page paid for twice."""
    async with sim_of(quotas={A: 15, B: 15}) as sim:
        shops = write_shops(tmp_path / "shops.txt", SHOPS[:10])
        out = tmp_path / "items.jsonl"
        run = await run_cli(*harvest_args(sim, shops, out), token=f"{A} {B}")
        assert run.code == 3, run.err
        assert "every token is retired" in run.err
        assert "rerun the same command to resume" in run.err
        assert_no_token_anywhere(run, tmp_path)
        run = await run_cli(*harvest_args(sim, shops, out), token=C)
        assert run.code == 0, run.err
        assert export_ids(out) == expected_ids(sim, SHOPS[:10])
        assert set(ok_per_page(sim.log.records).values()) == {1}
        assert "tokens:" not in run.out  # one token: today's summary


async def test_cli_token_flag_repeated_and_estimate_counts_across_tokens(
    tmp_path: Path,
) -> None:
    """``--token`` twice is two tokens; estimate's total and per-token lines agree."""
    async with sim_of() as sim:
        shops = write_shops(tmp_path / "shops.txt", SHOPS[:12])
        args = ["estimate", str(shops), "--base-url", sim.url, "--concurrency", "2"]
        run = await run_cli(*args, "--token", A, "--token", B, token=None)
        assert run.code == 0, run.err
        assert "this estimate spent 12" in run.out
        used = [t for t in (A, B) if of(t, sim.log.records)]
        assert used == [A, B]
        for token in (A, B):
            billed = len(of(token, sim.log.records))
            assert f"token {short_fingerprint(token)}: {billed} requests" in run.out
        assert_no_token_anywhere(run, tmp_path)


def test_client_and_pool_are_siblings_on_one_reader() -> None:
    """Client and TokenPool share the shop-reading methods of one base; the pool is not
    a Client, and every public member it has works on a pool (none was inherited from
    the client for state the pool lacks, as a transport or a request path)."""
    reads = ("get_shop_items", "fetch_page", "iter_shop_items", "fetch_shop", "harvest")
    for name in reads:
        base = getattr(tmapi_async.ShopReader, name)
        assert getattr(tmapi_async.Client, name) is base
        assert getattr(TokenPool, name) is base
    assert not issubclass(TokenPool, tmapi_async.Client)
    pool = TokenPool([A, B])
    assert isinstance(pool, tmapi_async.ShopReader)
    for name in ("_attempt", "_requests", "_transport", "_throttle", "auth"):
        assert not hasattr(pool, name), name
    for name in dir(pool):
        if not name.startswith("_"):
            getattr(pool, name)  # raises if the member needs what a pool does not hold
    with pytest.raises(TypeError):
        tmapi_async.ShopReader(base_url="https://api.tmapi.io", metrics=None)  # type: ignore[abstract]


def test_client_of_one_token_refuses_several(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Client`` is the client of one token: several are a TokenPool's."""
    with pytest.raises(tmapi_async.InvalidParameterError, match="TokenPool"):
        tmapi_async.Client(f"{A},{B}")
    monkeypatch.setenv("TMAPI_TOKEN", f"{A} {B}")
    with pytest.raises(tmapi_async.InvalidParameterError, match="TokenPool"):
        tmapi_async.Client()
    monkeypatch.setenv("TMAPI_TOKEN", f" {A} ")
    assert isinstance(tmapi_async.Client(), tmapi_async.Client)  # one token, as ever


async def test_cli_max_requests_counts_across_tokens(tmp_path: Path) -> None:
    """``--max-requests 7`` with three tokens: 7 requests at the server in all, exit 3;
    the rerun finishes with no page paid for twice."""
    async with sim_of() as sim:
        shops = write_shops(tmp_path / "shops.txt", SHOPS[:4])
        out = tmp_path / "items.jsonl"
        run = await run_cli(
            *harvest_args(sim, shops, out, "--max-requests", "7"), token=",".join(TOKENS)
        )
        assert run.code == 3, run.err
        assert "--max-requests 7 spent" in run.err
        assert len(sim.log) == 7
        run = await run_cli(*harvest_args(sim, shops, out), token=",".join(TOKENS))
        assert run.code == 0, run.err
        assert export_ids(out) == expected_ids(sim, SHOPS[:4])
        assert set(ok_per_page(sim.log.records).values()) == {1}
        assert_no_token_anywhere(run, tmp_path)


async def test_cli_estimate_every_token_refused_exit_3(tmp_path: Path) -> None:
    """Every token refused: estimate says so and exits 3, naming no token."""
    async with sim_of(tokens={"the-right-one"}) as sim:
        shops = write_shops(tmp_path / "shops.txt", SHOPS[:3])
        run = await run_cli("estimate", str(shops), "--base-url", sim.url, token=f"{A},{B}")
        assert run.code == 3, run.err
        assert "every token is retired" in run.err
        assert "retired: refused by the API" in run.out
        assert_no_token_anywhere(run, tmp_path)


async def test_cli_failures_file_and_manifest_hold_no_token(tmp_path: Path) -> None:
    """A shop that fails (422) is listed in the failures file; with two tokens, neither
    the failures file nor the manifest, export or state holds a token."""
    async with sim_of(failing_shops={"pool1": 1}, failing_code=422) as sim:
        shops = write_shops(tmp_path / "shops.txt", SHOPS[:4])
        out = tmp_path / "items.jsonl"
        run = await run_cli(*harvest_args(sim, shops, out), token=f"{A}\n{B}")
        assert run.code == 1, run.err
        failures = tmp_path / "items.jsonl.failures.txt"
        assert "pool1" in failures.read_text(encoding="utf-8")
        assert_no_token_anywhere(run, tmp_path)
        assert all(of(token, sim.log.records) for token in (A, B))
