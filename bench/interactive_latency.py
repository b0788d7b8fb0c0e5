"""Benchmark 4: how long ``spx-data --help``, ``status``, ``gaps`` and ``list`` take with a long
history, and how that time grows with it (issue 14: < 1 s median each at 3,000 sessions).

For each size (500, 1,500 and 3,000 published sessions; ``--quick``: 100 and 300) a temporary
home (Pro tier, ``processing.start_date`` 2012-06-01) is seeded in a child process: manifests
beside the (absent) data, a successful run each in a real SQLite Dagster instance, failed runs
scattered over the unpublished years (``spx_dagster_tests/defs/synthetic_history.py``), and the
DuckDB catalog refreshed over them. The seeding writes manifests only, as an older spx-data
would: the first command rebuilds the manifests' summary index (that warm-up run is not
counted; it also pays the cold page cache of the interpreter's imports). A simulator answers as
the terminal, so ``status`` sees a healthy one. Each command then runs as its own process, as a
user types it; the median of N runs is reported. For reference, the median of ``python -c
"import dagster"``: the floor of any command that imports Dagster.

The top-level ``*_median_s`` figures are those of the largest size; ``met`` says whether
``status``, ``gaps`` and ``list`` each answered in under a second there.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    REPO,
    median,
    pipeline_env,
    progress,
    run_child,
    simulator,
    temp_home,
)

NAME = "interactive_latency"
START_DATE = "2012-06-01"
COMMANDS = {"help": ["--help"], "status": ["status"], "gaps": ["gaps"], "list": ["list"]}
TARGET_S = 1.0
TARGETED = ("status", "gaps", "list")


@dataclass(frozen=True)
class Size:
    published: tuple[int, ...]
    runs: int


FULL = Size((500, 1500, 3000), 5)
QUICK = Size((100, 300), 2)


def seed_history(published: int) -> dict:
    """Seed this process's home (from the environment) with ``published`` sessions + catalog."""
    import duckdb

    from spx_dagster.core.catalog import refresh_catalog
    from spx_dagster.core.config import load_settings
    from spx_dagster.core.config.home import catalog_path
    from spx_dagster.ops.instance import open_instance
    from spx_dagster_tests.defs.synthetic_history import build_history

    settings = load_settings()
    output_dir = Path(settings.storage.output_dir)
    history = build_history(open_instance(settings), output_dir, published=published)
    # Every listed file is an empty parquet file of its dataset (build_history): the catalog's
    # views bind to them and listings see every session intact.
    with duckdb.connect(str(catalog_path(settings))) as connection:
        stats = refresh_catalog(connection, output_dir)
    return {
        "sessions": len(history.sessions),
        "published": len(history.published),
        "failed": len(history.failed),
        "runs": history.runs,
        "catalog_sessions": stats.sessions,
    }


def _command() -> list[str]:
    script = Path(sys.executable).with_name("spx-data")
    return [str(script)] if script.exists() else [sys.executable, "-m", "spx_dagster.cli.main"]


def time_command(
    args: list[str], env: dict[str, str], runs: int, *, command: list[str] | None = None
) -> dict:
    """Median wall seconds of ``spx-data ARGS`` (or ``command``) over ``runs`` runs after one
    warm-up."""
    seconds, codes = [], set()
    for attempt in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(
            [*(command or _command()), *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        elapsed = time.perf_counter() - started
        codes.add(done.returncode)
        if done.returncode not in (0, 1):  # 1: gaps found / a warning; anything else is broken
            raise RuntimeError(
                f"spx-data {' '.join(args)} exited with {done.returncode}: {done.stderr[-2000:]}"
            )
        if attempt:
            seconds.append(elapsed)
    return {
        "median_s": round(median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
        "exit_codes": sorted(codes),
    }


def _one_size(published: int, runs: int, base_url: str) -> dict:
    import os

    with temp_home(f"{NAME}-{published}", fast=True) as home:
        env = pipeline_env(
            home,
            base_url,
            processing__start_date=START_DATE,
            thetadata__subscription_tier="pro",
        )
        progress(f"{NAME}: seeding {published} published sessions (child process)")
        seeded = run_child("interactive_latency:seed_history", env=env, published=published)
        full_env = {**os.environ, **env}
        timings = {}
        for name, args in COMMANDS.items():
            progress(
                f"{NAME}: {published} sessions: spx-data {' '.join(args)} x {runs} (+1 warm-up)"
            )
            timings[name] = time_command(args, full_env, runs)
    return {"history": seeded.value, "seed_s": round(seeded.wall_s, 1), "commands": timings}


def run(quick: bool, shared: dict) -> tuple[dict, dict, bool]:
    import os

    size = QUICK if quick else FULL
    with simulator(chain="tiny") as sim:
        by_size = {str(n): _one_size(n, size.runs, sim.base_url) for n in size.published}
        # What any command that imports Dagster pays before doing anything: the reference.
        import_dagster = time_command(
            ["-c", "import dagster"], dict(os.environ), size.runs, command=[sys.executable]
        )
    largest = by_size[str(size.published[-1])]
    timings = largest["commands"]
    growth = {
        name: {n: by_size[n]["commands"][name]["median_s"] for n in by_size} for name in COMMANDS
    }
    met = all(timings[name]["median_s"] < TARGET_S for name in TARGETED)
    return (
        {
            "start_date": START_DATE,
            "history": largest["history"],
            "seed_s": largest["seed_s"],
            "runs_per_command": size.runs,
            "commands": timings,
            "by_size": by_size,
            "median_s_by_size": growth,
            "help_median_s": timings["help"]["median_s"],
            "status_median_s": timings["status"]["median_s"],
            "gaps_median_s": timings["gaps"]["median_s"],
            "list_median_s": timings["list"]["median_s"],
            "import_dagster_median_s": import_dagster["median_s"],
        },
        {f"{name}_median_s": f"< {TARGET_S:g}" for name in TARGETED},
        met,
    )
