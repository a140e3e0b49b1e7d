"""Callboard benchmarks: Callboard against the ceilings it is compared with, in one run.

`python -m bench` (see `docs/benchmarks.md`) measures, per backend (SQLite, PostgreSQL):

* ingest: signed `generic` callbacks, each for a distinct job, against a no-op Starlette handler
  served the same way (wrk, or a Python closed-loop fallback);
* end to end: callback in → signed delivery received by a local sink, at a fixed rate, and the
  highest rate sustained with p99 < 50 ms;
* fan-out: one event to 100 subscribers and 5,000 events to one, against a bare aiohttp session
  (and a bare httpx client) posting the same signed bodies to the same sink.

Results go to `bench/results/` as JSON and markdown, with the machine, versions and commit.
Nothing here runs as a timed test; `tests/bench/test_smoke.py` only checks that `--quick` works.
"""
