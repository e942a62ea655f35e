"""Benchmarks of tmapi-async against what users would pick instead.

``python -m benchmarks [--quick] [--update-docs]`` runs the suite (see
``benchmarks/__main__.py`` and ``docs/benchmarks.md``): figures go to the untracked
``benchmark-results/``, and to the documentation only with ``--update-docs``.
Focused runs, each on its own: ``bench_client`` (library against the bare loop),
``bench_decode``, ``bench_memory``, ``bench_simulator``, ``bench_diff`` (``tmapi-async
diff`` of two large exports), ``bench_pool`` (one token against three), ``bench_redis``
and ``bench_redis_throttle`` (the scale-out on Redis).
"""
