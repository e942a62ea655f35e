"""A contender's child process, the library's modules loaded before any timing starts.

Run: ``python -m benchmarks._child CONTENDER [options of benchmarks._workers]``.

``import tmapi_async`` loads its modules on first use (PEP 562), so the first
``tm.Client`` of a contender would import the client, its throttle, retry and Redis
seams inside the timed run: some 50 ms, a tenth of a run of 4,000 requests, charged to
the library and never to the bare loop. Here they are imported first, then the
contender runs as :mod:`benchmarks._workers` runs it.
"""

from __future__ import annotations

import tmapi_async as tm
from benchmarks._workers import main

# Touching a public name imports its module now, before the contender's clock starts.
PRELOADED = (tm.Client, tm.ShopQuery, tm.Throttle, tm.PageEvent, tm.TokenPool, tm.Metrics)

if __name__ == "__main__":
    main()
