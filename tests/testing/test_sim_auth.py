"""How a key may come: as the ``apikey`` header, as the ``apiToken`` query parameter, or
either (``auth``); another way is answered as an unknown token is; the log says which
way each request used."""

from __future__ import annotations

import argparse
from collections import Counter

import aiohttp
import pytest

from tmapi_async.testing import SimulatedTmapi, SimulatorConfig, fingerprint
from tmapi_async.testing._cli import build_config, configure_parser

KEY = "key-secret-0123456789"
UNAUTHORIZED = b'{"code":401,"msg":"Token is not authorized or has expired","data":null}'


async def get(sim: SimulatedTmapi, *, header: str | None, query: str | None) -> tuple[int, bytes]:
    """GET page 1 of a shop, the key sent as the ``apikey`` header and/or the query."""
    params = {"shop_url": sim.shop_url("abc")}
    if query is not None:
        params["apiToken"] = query
    headers = {"apikey": header} if header is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.endpoint, params=params, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


WAYS = {"header": (KEY, None), "query": (None, KEY), "both": (KEY, KEY), "none": (None, None)}


@pytest.mark.parametrize(
    ("accepts", "taken"),
    [
        ("both", {"header", "query", "both"}),
        ("header", {"header", "both"}),
        ("query", {"query", "both"}),
    ],
)
async def test_a_key_sent_a_way_not_accepted_is_an_unknown_token(
    accepts: str, taken: set[str]
) -> None:
    """Each way answered 200 if accepted, else 401 with the unknown token's body; the
    log records the way and the key's fingerprint, refused or not."""
    async with SimulatedTmapi(auth=accepts) as sim:  # type: ignore[arg-type]
        for way, (header, query) in WAYS.items():
            status, body = await get(sim, header=header, query=query)
            if way in taken:
                assert status == 200, way
            else:
                assert (status, body) == (401, UNAUTHORIZED), way
        records = sim.log.records
        assert [r.auth for r in records] == list(WAYS)
        assert [r.outcome == "ok" for r in records] == [way in taken for way in WAYS]
        assert {r.token_fp for r in records[:3]} == {fingerprint(KEY)}
        assert sim.log.refused(KEY) == 3 - len(taken)
        assert sim.log.refused() == 4 - len(taken)
        assert sim.log.count_by_auth() == Counter(WAYS.keys())


async def test_tokens_apply_to_the_key_whichever_way_it_comes() -> None:
    """With ``tokens``, an unknown key is refused as a header too."""
    async with SimulatedTmapi(tokens={KEY}) as sim:
        assert (await get(sim, header=KEY, query=None))[0] == 200
        assert (await get(sim, header="other", query=None))[0] == 401
        assert (await get(sim, header=None, query="other"))[0] == 401


def test_an_unknown_auth_is_refused() -> None:
    """An auth other than both, header or query is refused, naming the three."""
    with pytest.raises(ValueError, match="both, header, query"):
        SimulatorConfig(auth="apikey")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["both", "header", "query"])
def test_simulate_auth_flag(value: str) -> None:
    """``simulate --auth`` sets the config; the default takes both."""
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert build_config(parser.parse_args(["--auth", value])).auth == value
    assert build_config(parser.parse_args([])).auth == "both"
    with pytest.raises(SystemExit):
        parser.parse_args(["--auth", "bearer"])
