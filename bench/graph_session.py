"""Benchmark 7: the full-chain 1m greeks session through the Dagster graph.

``pipeline_throughput`` times the three stages as plain functions; this one runs the same
session (2024-11-04, full chain, 75 requests, 10.6 M rows) the way a user does, with
``spx-data process`` in a child process: Dagster's in-process executor, the run and its events
on a real SQLite instance, the asset checks, then the DuckDB catalog refresh. Reported: peak RSS
of that process (issue #4: under 1.5 GB whatever the day's size), records/min over the run and
over the whole command, CPU seconds.
"""

from __future__ import annotations

from bench.harness import (
    SESSION,
    per_minute,
    pipeline_env,
    progress,
    run_child,
    simulator,
    temp_home,
)

NAME = "graph_session"
TARGET_PEAK_RSS_MB = 1500
FULL = ("full", None)
QUICK = ("small", 2)


def measure(chain: str, max_dte: int | None) -> dict:
    with simulator(chain=chain) as sim, temp_home(NAME) as home:
        env = pipeline_env(
            home, sim.base_url, processing__datasets="greeks", processing__max_dte=max_dte
        )
        progress(f"{NAME}: spx-data process {SESSION} through Dagster ({chain}, max_dte {max_dte})")
        child = run_child("graph_run:process_session", env=env, session=SESSION.isoformat())
    value = child.value
    if value["exit_code"] != 0 or value.get("status") != "success":
        raise RuntimeError(
            f"spx-data process failed (exit {value['exit_code']}): {value['stderr']}"
        )
    rows = value["rows"]
    return {
        "session": SESSION.isoformat(),
        "chain": chain,
        "max_dte": max_dte,
        "datasets": ["greeks"],
        "requests": value["requests"],
        "rows": rows,
        "parquet_mb": round(value["bytes"] / 1e6, 1),
        "run_s": value["seconds"],
        "command_s": round(child.wall_s, 2),
        "records_per_min_run": round(per_minute(rows, value["seconds"])),
        "records_per_min_command": round(per_minute(rows, child.wall_s)),
        "cpu_s": round(child.cpu_s, 1),
        "peak_rss_mb": round(child.peak_rss_mb),
        "quality_score": value["quality_score"],
        "catalog_refreshed": value["catalog"]["refreshed"],
    }


def run(quick: bool, shared: dict) -> tuple[dict, str, bool]:
    figures = measure(*(QUICK if quick else FULL))
    return (
        figures,
        f"peak_rss_mb <= {TARGET_PEAK_RSS_MB}",
        figures["peak_rss_mb"] <= TARGET_PEAK_RSS_MB,
    )
