"""One process of the multi-process throttle tests: a Client sharing its token's limits
through Redis crawls the shops it is given.

Usage: python throttle_child.py BASE_URL REDIS_URL RATE CONCURRENCY SHOP...
(the token comes from TMAPI_TOKEN). Prints ``ready`` once its client is open, waits for
a line on stdin (the go signal, so that all processes start together), prints ``shop
STATUS`` per shop and ``done REQUESTS`` at the end.
"""

from __future__ import annotations

import asyncio
import sys

import tmapi_async as tm


async def main(
    base_url: str, redis_url: str, rate: float, concurrency: int, shops: list[str]
) -> None:
    client = tm.Client(base_url=base_url, redis_url=redis_url, rate=rate, concurrency=concurrency)
    async with client:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        async for result in client.harvest(shops, keep_items=False):
            print("shop", result.status, flush=True)
        print("done", client.requests, flush=True)


if __name__ == "__main__":
    base, redis_url, rate, concurrency, *shops = sys.argv[1:]
    asyncio.run(main(base, redis_url, float(rate), int(concurrency), shops))
