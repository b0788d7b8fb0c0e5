"""Benchmark 1: one full-chain 1m greeks session through fetch → validate → publish.

The session (2024-11-04 on the simulator's ``full`` chain: 75 requests, 27,130 contracts,
10.6 M rows, ~1.66 GB of CSV) runs through the plain session stages in a child process
(``pipeline_run.run_stages``); then the same requests go through the bare bound
(``bare_bound.fetch_bare``: HTTP read + Arrow CSV parse + parquet write, nothing else) in another
child. Reported: records/min and MB/min of CSV received, CPU seconds and peak RSS of each child,
the simulator's CPU seconds over each (it shares the two cores), and our throughput as a share
of the bound's.

Targets (issue #7): >= 0.7 of the bound, >= 5,000,000 records/min on 2 cores, peak RSS <= 1.5 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import (
    SESSION,
    per_minute,
    pipeline_env,
    process_cpu_s,
    progress,
    run_child,
    simulator,
    temp_home,
)
from bench.pipeline_run import plan_requests

NAME = "pipeline_throughput"
DATASETS = ("greeks",)
TARGET = {"ratio_to_bound": 0.7, "records_per_min": 5_000_000, "peak_rss_mb": 1500}


@dataclass(frozen=True)
class Size:
    chain: str
    max_dte: int | None


FULL = Size("full", None)
QUICK = Size("small", 2)


def measure(size: Size) -> dict:
    """Run the pipeline and the bound on the same requests; return both sets of figures."""
    with simulator(chain=size.chain) as sim, temp_home(NAME) as home:
        env = pipeline_env(
            home,
            sim.base_url,
            processing__datasets=",".join(DATASETS),
            processing__max_dte=size.max_dte,
        )
        progress(f"{NAME}: pipeline fetch → validate → publish of {SESSION} ({size})")
        sim_before = process_cpu_s(sim.process.pid)
        pipe = run_child("pipeline_run:run_stages", env=env, session=SESSION.isoformat())
        sim_pipeline = process_cpu_s(sim.process.pid) - sim_before
        requests = plan_requests(sim.base_url, SESSION, max_dte=size.max_dte, datasets=DATASETS)
        progress(f"{NAME}: bare bound over the same {len(requests)} requests")
        sim_before = process_cpu_s(sim.process.pid)
        bound = run_child(
            "bare_bound:fetch_bare",
            base_url=sim.base_url,
            session=SESSION.isoformat(),
            requests=requests,
            concurrency=pipe.value["concurrency"],
            out_dir=str(home / "bare"),
        )
        sim_bound = process_cpu_s(sim.process.pid) - sim_before
    p, b = pipe.value, bound.value
    pipeline_s, bound_s = p["total_s"], b["seconds"]
    return {
        "session": SESSION.isoformat(),
        "chain": size.chain,
        "max_dte": size.max_dte,
        "datasets": list(DATASETS),
        "requests": p["requests"],
        "contracts": p["contracts"],
        "rows": p["rows"],
        "wire_mb": round(p["wire_bytes"] / 1e6, 1),
        "parquet_mb": round(p["parquet_bytes"] / 1e6, 1),
        "pipeline": {
            "seconds": round(pipeline_s, 2),
            "fetch_s": round(p["fetch_s"], 2),
            "validate_s": round(p["validate_s"], 2),
            "publish_s": round(p["publish_s"], 2),
            "records_per_min": round(per_minute(p["rows"], pipeline_s)),
            "mb_per_min": round(per_minute(p["wire_bytes"] / 1e6, pipeline_s), 1),
            "cpu_s": round(pipe.cpu_s, 1),
            "stage_cpu_s": {
                stage: round(p[f"{stage}_cpu_s"], 1) for stage in ("fetch", "validate", "publish")
            },
            "peak_rss_mb": round(pipe.peak_rss_mb),
            "simulator_cpu_s": round(sim_pipeline, 1),
            "quality_score": p["quality_score"],
            "rejected_rows": p["rejected_rows"],
            "retries": p["retries"],
        },
        "bound": {
            "seconds": round(bound_s, 2),
            "records_per_min": round(per_minute(b["rows"], bound_s)),
            "mb_per_min": round(per_minute(b["wire_bytes"] / 1e6, bound_s), 1),
            "cpu_s": round(bound.cpu_s, 1),
            "peak_rss_mb": round(bound.peak_rss_mb),
            "simulator_cpu_s": round(sim_bound, 1),
            "rows": b["rows"],
            "same_bytes": b["wire_bytes"] == p["wire_bytes"] and b["not_ok"] == 0,
        },
        "ratio_to_bound": round(bound_s / pipeline_s, 3),
        "fetch_stage_ratio_to_bound": round(bound_s / p["fetch_s"], 3),
        # Kept for the compression benchmark (not printed twice: see compression.py).
        "_wire_bytes": p["wire_bytes"],
        "_parquet_bytes": p["parquet_bytes"],
    }


def verdict(figures: dict) -> tuple[dict, bool]:
    pipeline = figures["pipeline"]
    met = {
        "ratio_to_bound": figures["ratio_to_bound"] >= TARGET["ratio_to_bound"],
        "records_per_min": pipeline["records_per_min"] >= TARGET["records_per_min"],
        "peak_rss_mb": pipeline["peak_rss_mb"] <= TARGET["peak_rss_mb"],
    }
    return met, all(met.values())


def run(quick: bool, shared: dict) -> tuple[dict, dict, bool | None]:
    """Figures, target and verdict; leaves the byte counts in ``shared`` for compression."""
    figures = measure(QUICK if quick else FULL)
    shared[NAME] = {
        "wire_bytes": figures.pop("_wire_bytes"),
        "parquet_bytes": figures.pop("_parquet_bytes"),
        "rows": figures["rows"],
        "chain": figures["chain"],
        "max_dte": figures["max_dte"],
    }
    met_by_target, met = verdict(figures)
    figures["met_by_target"] = met_by_target
    target = {
        "ratio_to_bound": f">= {TARGET['ratio_to_bound']}",
        "records_per_min": f">= {TARGET['records_per_min']:,} (2 cores)",
        "peak_rss_mb": f"<= {TARGET['peak_rss_mb']}",
    }
    return figures, target, met
