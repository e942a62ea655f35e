"""Benchmarks of tmapi-async against what users would pick instead.

``python -m benchmarks [--quick]`` runs the suite (see ``benchmarks/__main__.py`` and
``docs/benchmarks.md``); ``python -m benchmarks.bench_client`` is the focused
library-vs-bare-loop comparison; ``bench_decode``, ``bench_simulator`` and
``bench_memory`` run on their own too.
``bench_diff`` measures ``tmapi-async diff`` of two large exports (time, peak RSS).
"""
