"""Decoding one page of 20 items: msgspec Structs vs ``json`` + dataclasses vs pydantic.

Run: ``python -m benchmarks.bench_decode [--rounds 7] [--json]``

The page is a real simulator answer (20 items, image URLs with the API's four slashes).
Each contender produces typed items with the same normalisation as the library
(``item_id`` as a string, image URL repaired); ``msgspec (bare Structs)`` skips it, to
show what the normalisation costs. Contenders alternate round by round; the figure is
the median over rounds of the best-of-3 timing within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from benchmarks._common import emit, have, machine_info, median
from benchmarks._workers import BareEnvelope
from tmapi_async import normalise_image_url
from tmapi_async._models import page_decoder  # the library's own decoder is what is measured
from tmapi_async.testing import SimulatedTmapi, SimulatorConfig


async def _fetch_page() -> bytes:
    params = {"apiToken": "t", "shop_url": "https://shop1.1688.com/", "page": "1"}
    async with (
        SimulatedTmapi(SimulatorConfig(default_shop_size=100)) as sim,
        aiohttp.ClientSession() as session,
        session.get(sim.endpoint, params=params) as response,
    ):
        return await response.read()


# -- json + dataclasses ---------------------------------------------------------------------


@dataclass(slots=True)
class DcSale:
    sale_quantity: int | None = None
    sale_amount: int | float | None = None


@dataclass(slots=True)
class DcItem:
    item_id: str
    title: str = ""
    img: str = ""
    category_path: list[Any] = field(default_factory=list)
    category_name: str = ""
    price: str = ""
    quantity: int | None = None
    sale_info: DcSale | None = None


@dataclass(slots=True)
class DcPage:
    page: int
    page_size: int
    total_count: int
    items: list[DcItem]


def decode_json_dataclasses(body: bytes) -> DcPage:
    data = json.loads(body)["data"]
    items = []
    for raw in data["items"]:
        sale = raw.get("sale_info")
        items.append(
            DcItem(
                item_id=str(raw["item_id"]),
                title=raw.get("title", ""),
                img=normalise_image_url(raw.get("img", "")),
                category_path=raw.get("category_path") or [],
                category_name=raw.get("category_name", ""),
                price=raw.get("price", ""),
                quantity=raw.get("quantity"),
                sale_info=DcSale(**sale) if sale else None,
            )
        )
    return DcPage(data["page"], data["page_size"], int(data["total_count"]), items)


# -- msgspec without normalisation: the bare loop's own Structs ----------------------------

bare_decoder = msgspec.json.Decoder(BareEnvelope, strict=False)


def _pydantic_decoder() -> Callable[[bytes], Any] | None:
    if not have("pydantic"):
        return None
    from pydantic import BaseModel, field_validator

    class PSale(BaseModel):
        sale_quantity: int | None = None
        sale_amount: int | float | None = None

    class PItem(BaseModel):
        item_id: str
        title: str = ""
        img: str = ""
        category_path: list[Any] = []
        category_name: str = ""
        price: str = ""
        quantity: int | None = None
        sale_info: PSale | None = None

        @field_validator("item_id", mode="before")
        @classmethod
        def _as_str(cls, value: object) -> str:
            return str(value)

        @field_validator("img")
        @classmethod
        def _img(cls, value: str) -> str:
            return normalise_image_url(value)

    class PPage(BaseModel):
        page: int = 1
        page_size: int = 0
        total_count: int = 0
        items: list[PItem] = []

    class PEnvelope(BaseModel):
        code: int
        msg: str = ""
        data: PPage | None = None

    return PEnvelope.model_validate_json


def measure(rounds: int) -> dict[str, Any]:
    """µs per page for each contender, alternated round by round."""
    body = asyncio.run(_fetch_page())
    contenders: dict[str, Callable[[bytes], Any]] = {
        "msgspec Structs (tmapi-async page_decoder)": page_decoder.decode,
        "msgspec Structs (bare, no normalisation)": bare_decoder.decode,
        "json + dataclasses": decode_json_dataclasses,
    }
    pyd = _pydantic_decoder()
    if pyd is not None:
        contenders["pydantic v2 (model_validate_json)"] = pyd
    items = len(page_decoder.decode(body).data.items)  # type: ignore[union-attr]
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, decode in contenders.items():
            timer = timeit.Timer(lambda d=decode: d(body))  # type: ignore[misc]
            number, _ = timer.autorange()
            best = min(timer.repeat(repeat=3, number=number)) / number
            samples[name].append(best * 1e6)
    us = {name: median(values) for name, values in samples.items()}
    base = us["msgspec Structs (tmapi-async page_decoder)"]
    return {
        "items_per_page": items,
        "body_bytes": len(body),
        "us_per_page": us,
        "ratio_to_tmapi_async": {name: v / base for name, v in us.items()},
        "samples_us": samples,
    }


def main() -> None:
    """Print µs per page and ratios (or the JSON figures)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_decode")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.rounds)
    if args.json:
        emit(figures)
        return
    print(
        f"{machine_info()['date']}: one page of {figures['items_per_page']} items, "
        f"{figures['body_bytes']} bytes"
    )
    for name, value in figures["us_per_page"].items():
        ratio = figures["ratio_to_tmapi_async"][name]
        print(f"  {name:45} {value:8.1f} µs/page  {ratio:5.2f} x")


if __name__ == "__main__":
    main()
