"""A harvest's listing in Redis: written as ``Listing.to_record()``, read back as a
``Listing``, and a record an earlier version wrote is still the same listing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

import tmapi_async as tm
from tmapi_async._redis.control import WorkerControls
from tmapi_async._redis.queue import HarvestQueue


async def test_the_record_holds_the_listing_and_workers_read_it_back(redis_url: str) -> None:
    """``create`` stores ``to_record()``; the queue and the workers read the listing and
    the bound on pages back."""
    listing = tm.Listing(25, "time_down", cat="9")
    async with Redis.from_url(redis_url) as redis:
        queue = HarvestQueue(redis, "h1")
        await queue.create(output="/tmp/out.jsonl", listing=listing, max_pages=4)
        assert (await redis.hget(queue.meta_key, "params")).decode() == listing.to_record()
        assert await queue.listing() == listing
        assert await WorkerControls(redis).listing(queue) == (listing, 4)


async def test_a_record_of_an_earlier_version_is_the_same_listing(redis_url: str) -> None:
    """A record spelled otherwise (keys in another order, a number for the category) is
    accepted for the same listing and refused for another."""
    earlier = '{"sort": "sales", "page_size": 20, "cat": 7, "cat_type": null}'
    listing = tm.Listing(sort="sales", cat=7)
    async with Redis.from_url(redis_url) as redis:
        queue = HarvestQueue(redis, "h2")
        await redis.hset(queue.meta_key, mapping={"params": earlier})
        await queue.create(output="/tmp/out.jsonl", listing=listing)
        assert await queue.listing() == listing
        with pytest.raises(ValueError, match="other parameters"):
            await queue.create(output="/tmp/out.jsonl", listing=tm.Listing(sort="sales"))
