"""spx-data's benchmarks (issue #7): ``python -m bench`` (``make bench``).

One module per benchmark, each with ``NAME`` and ``run(quick, shared) -> (figures, target, met)``:

- ``pipeline_throughput``: a full-chain 1m greeks session through fetch → validate → publish,
  against the bare bound (HTTP read + CSV parse + parquet write) on the same requests.
- ``terminal_schedule``: fetch wall time under realistic terminal latency vs the ideal packing
  of the measured request times into the tier's lanes.
- ``naive_baseline``: the same requests done the common way (requests → JSON → row dicts →
  pandas → to_parquet, one at a time) vs our pipeline.
- ``interactive_latency``: ``spx-data --help``, ``status`` and ``gaps`` with 3,000 published
  sessions since 2012.
- ``backfill_overhead``: orchestration seconds per session of a backfill through the daemon.
- ``compression``: parquet bytes published vs CSV bytes received, and the writer settings
  (zstd level, per-column encodings, sort order, row groups) measured against each other.

Shared machinery is in ``harness.py``; child processes enter through ``child.py``. Figures of the
last full run and what limits them: ``bench/RESULTS.md``.
"""
