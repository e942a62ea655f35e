"""The Scrapy contender: the same page-1-then-fan-out harvest, items to a JSON Lines feed.

Run as its own process::

    python -m scrapy runspider benchmarks/_scrapy_spider.py -a base_url=URL -a shops=FILE \
        -s CONCURRENT_REQUESTS=64 -s CONCURRENT_REQUESTS_PER_DOMAIN=64 -O OUT.jsonl:jsonlines

AutoThrottle off, no download delay, ``CONCURRENT_REQUESTS`` (and per domain) equal to
the concurrency, robots.txt and cookies off. At the end it prints one JSON line: its
requests, items and the seconds from its first request to the spider's close.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Response

TOKEN = "bench-token"


class ShopItemsSpider(scrapy.Spider):
    """Page 1 of every shop, then its pages 2..N, every item yielded to the feed."""

    name = "tmapi_shop_items"
    custom_settings = {  # noqa: RUF012 (Scrapy's own convention)
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0,
        "CONCURRENT_REQUESTS_PER_IP": 0,
        "ROBOTSTXT_OBEY": False,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
    }

    def __init__(
        self,
        base_url: str = "",
        shops: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = base_url.rstrip("/") + "/1688/shop/items/v2"
        with open(shops, encoding="utf-8") as f:
            self.shops = [line.strip() for line in f if line.strip()]
        self.requests_sent = 0
        self.items_seen = 0
        self.started = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ShopItemsSpider:
        spider: ShopItemsSpider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.closed_report, signal=signals.spider_closed)
        return spider

    def _request(self, shop: str, page: int) -> scrapy.Request:
        self.requests_sent += 1
        url = (
            f"{self.endpoint}?apiToken={TOKEN}&shop_url={quote(shop, safe='')}"
            f"&page_size=20&page={page}"
        )
        return scrapy.Request(url, callback=self.parse_page, cb_kwargs={"shop": shop, "page": page})

    async def start(self) -> AsyncIterator[scrapy.Request]:
        self.started = time.perf_counter()
        for shop in self.shops:
            yield self._request(shop, 1)

    def parse_page(
        self, response: Response, shop: str, page: int
    ) -> Iterator[dict[str, Any] | scrapy.Request]:
        data = json.loads(response.body)["data"]
        for item in data["items"]:
            item["shop_url"] = shop
            self.items_seen += 1
            yield item
        if page == 1:
            last = math.ceil(data["total_count"] / (data["page_size"] or 20))
            for p in range(2, last + 1):
                yield self._request(shop, p)

    def closed_report(self, spider: scrapy.Spider) -> None:
        wall = time.perf_counter() - self.started
        print(
            json.dumps({"requests": self.requests_sent, "items": self.items_seen, "wall": wall}),
            flush=True,
        )
