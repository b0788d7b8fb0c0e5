"""Benchmark 6: parquet bytes published vs CSV bytes received, for 1m greeks.

Uses the byte counts of ``pipeline_throughput`` when it ran in the same invocation (the full
session); run alone, it processes a session of its own (the nearest expirations of the full
chain, or the quick size) through the plain stages in a child process.

No target in issue #7; ``met`` is null.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import SESSION, pipeline_env, progress, run_child, simulator, temp_home

NAME = "compression"
SOURCE = "pipeline_throughput"


@dataclass(frozen=True)
class Size:
    chain: str
    max_dte: int | None


FULL = Size("full", 30)  # 25 requests, 8,570 contracts, 3.4 M rows
QUICK = Size("small", 2)


def own_run(size: Size) -> dict:
    with simulator(chain=size.chain) as sim, temp_home(NAME) as home:
        env = pipeline_env(
            home, sim.base_url, processing__datasets="greeks", processing__max_dte=size.max_dte
        )
        progress(f"{NAME}: processing {SESSION} ({size})")
        figures = run_child("pipeline_run:run_stages", env=env, session=SESSION.isoformat()).value
    return {
        "wire_bytes": figures["wire_bytes"],
        "parquet_bytes": figures["parquet_bytes"],
        "rows": figures["rows"],
        "chain": size.chain,
        "max_dte": size.max_dte,
    }


def run(quick: bool, shared: dict) -> tuple[dict, None, None]:
    source = shared.get(SOURCE)
    measured_by = f"{SOURCE} run" if source else "own run"
    if source is None:
        source = own_run(QUICK if quick else FULL)
    csv, parquet, rows = source["wire_bytes"], source["parquet_bytes"], source["rows"]
    return (
        {
            "session": SESSION.isoformat(),
            "dataset": "greeks",
            "chain": source["chain"],
            "max_dte": source["max_dte"],
            "measured_by": measured_by,
            "rows": rows,
            "csv_mb": round(csv / 1e6, 1),
            "parquet_mb": round(parquet / 1e6, 1),
            "ratio": round(csv / parquet, 2),
            "parquet_share": round(parquet / csv, 3),
            "csv_bytes_per_row": round(csv / rows, 1),
            "parquet_bytes_per_row": round(parquet / rows, 1),
        },
        None,
        None,
    )
