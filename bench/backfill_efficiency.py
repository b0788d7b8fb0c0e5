"""Benchmark: does a backfill through the daemon keep the terminal's lanes busy?

A temporary home (SQLite instance, the repository's ``dagster.yaml``) points at a simulator with
the ``realistic`` latency profile. Two sessions before the range are processed first
(``spx-data process``) and ``spx-data backfill FROM TO --dry-run --json`` prints the estimate a
first backfill gets (its overhead bound by the runs); then ``dagster-daemon run`` is started, a
warm-up backfill of three more sessions runs and the estimate is taken again (its overhead
measured from that short backfill). A first backfill of N sessions follows ("the previous
backfill", timed and estimated too), the estimate is taken once more (measured from it, as a
researcher filling a history year after year sees it), and ``spx-data backfill FROM TO --wait
--json`` of the next N sessions is timed from start to exit, as a user would type it.

The simulator counts the lane-seconds it served (``/_sim/stats``: ``busy_lane_s``, the integral
of requests holding one of its 4 slots):

    ideal          = busy_lane_s / lanes        (the terminal's floor for this workload)
    efficiency     = wall / ideal               (target ≤ 1.15)
    lanes busy     = busy_lane_s / (lanes × wall)
    overhead       = (wall − ideal) / sessions
    estimate error = estimate / wall − 1        (target within ±20 %, after a backfill of
                                                 the same size; after the 3-session warm-up too)

Both the ``small`` and the ``full`` chain are run (``--quick``: 3 sessions of the tiny chain);
``SPX_BENCH_BACKFILL_RUNS=small:20`` picks the chains and sizes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.backfill_overhead import _start_daemon, _stop, _timeline
from bench.harness import REPO, _machine_busy_cpu_s, pipeline_env, progress, simulator, temp_home

NAME = "backfill_efficiency"
FIRST_SESSION = dt.date(2024, 9, 3)
WARM_UP_PROCESSED = 2
WARM_UP_BACKFILLED = 3
FULL_RUNS = (("small", 20), ("full", 20))
QUICK_RUNS = (("tiny", 3),)
BACKFILL_TIMEOUT_S = 3 * 3600
EFFICIENCY_TARGET = 1.15
ESTIMATE_TOLERANCE = 0.20


def _sessions(first: dt.date, count: int) -> list[dt.date]:
    from spx_dagster.core import calendar

    return calendar.sessions_between(first, first + dt.timedelta(days=count * 2 + 7))[:count]


def _warm_up_days(count: int) -> list[dt.date]:
    from spx_dagster.core import calendar

    before = calendar.sessions_between(FIRST_SESSION - dt.timedelta(days=21), FIRST_SESSION)
    return [d for d in before if d < FIRST_SESSION][-count:]


def _chosen_runs(quick: bool) -> tuple[tuple[str, int], ...]:
    chosen = os.environ.get("SPX_BENCH_BACKFILL_RUNS")
    if not chosen:
        return QUICK_RUNS if quick else FULL_RUNS
    return tuple((c, int(n)) for c, n in (part.split(":") for part in chosen.split(",")))


def _spx_data(args: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("spx-data")), *args, "--json"],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BACKFILL_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"spx-data {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout)


def _timed_backfill(first: str, last: str, env: dict[str, str], sim, instance) -> dict:
    """``spx-data backfill FIRST LAST --wait`` timed from start to exit: wall, the machine's
    CPU, the simulator's lane-seconds and the runs' timeline."""
    sim.control.reset_stats()
    started, busy = time.monotonic(), _machine_busy_cpu_s()
    outcome = _spx_data(["backfill", first, last, "--wait"], env)
    wall, exited_at = time.monotonic() - started, time.time()
    cpu = _machine_busy_cpu_s() - busy
    stats = sim.control.stats()
    runs = _timeline(instance, outcome["backfill_id"], list(outcome["run_ids"].values()), exited_at)
    return {"outcome": outcome, "wall": wall, "cpu": cpu, "stats": stats, "runs": runs}


def _error(estimate: dict, wall: float) -> float | None:
    seconds = estimate.get("seconds")
    return round(seconds / wall - 1, 3) if seconds else None


def _estimate_figures(estimate: dict, wall: float) -> dict:
    return {
        "estimate_s": estimate.get("seconds"),
        "estimate_basis": estimate.get("basis"),
        "estimate_overhead_basis": estimate.get("overhead_basis"),
        "estimate_pace_s": estimate.get("seconds_per_session"),
        "estimate_pace_basis": estimate.get("pace_basis"),
        "estimate_cpu_per_session_s": estimate.get("cpu_seconds_per_session"),
        "estimate_measured_runs": estimate.get("measured_runs"),
        "estimate_error": _error(estimate, wall),
    }


def one_backfill(chain: str, count: int) -> dict:
    """Warm up, backfill ``count`` sessions, estimate and backfill the next ``count``; the
    figures of the last one (and of the first, as ``previous``)."""
    from spx_dagster.defs.instance_config import render_instance_yaml

    days = _sessions(FIRST_SESSION, 2 * count)
    before, days = days[:count], days[count:]
    first, last = days[0].isoformat(), days[-1].isoformat()
    warm = _warm_up_days(WARM_UP_PROCESSED + WARM_UP_BACKFILLED)
    processed, backfilled = warm[:WARM_UP_PROCESSED], warm[WARM_UP_PROCESSED:]
    with simulator(profile="realistic", chain=chain) as sim, temp_home(NAME) as home:
        env = pipeline_env(
            home,
            sim.base_url,
            processing__start_date=warm[0].isoformat(),
            quality__listing_rules="false" if chain == "tiny" else None,
        )
        dagster_home = Path(env["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text(render_instance_yaml())
        for day in processed:
            progress(f"{NAME}: {chain} warm-up: spx-data process {day}")
            _spx_data(["process", day.isoformat()], env)
        first_estimate = _spx_data(["backfill", first, last, "--dry-run"], env)["estimate"]
        progress(f"{NAME}: starting dagster-daemon")
        daemon, instance = _start_daemon(home, env, home / "daemon.log")
        try:
            progress(f"{NAME}: {chain} warm-up backfill of {len(backfilled)} sessions")
            warm_up = _timed_backfill(
                backfilled[0].isoformat(), backfilled[-1].isoformat(), env, sim, instance
            )
            span = ["backfill", before[0].isoformat(), before[-1].isoformat()]
            short_estimate = _spx_data([*span, "--dry-run"], env)["estimate"]
            progress(f"{NAME}: {chain}: spx-data {' '.join(span)} --wait ({count}, previous)")
            previous = _timed_backfill(*span[1:], env, sim, instance)
            estimate = _spx_data(["backfill", first, last, "--dry-run"], env)["estimate"]
            progress(f"{NAME}: {chain}: spx-data backfill {first} {last} --wait ({count})")
            measured = _timed_backfill(first, last, env, sim, instance)
        finally:
            _stop(daemon)
    return {
        "chain": chain,
        "sessions": count,
        "first": first,
        "last": last,
        **_backfill_figures(measured, count),
        **_estimate_figures(estimate, measured["wall"]),
        "first_backfill_estimate_s": first_estimate.get("seconds"),
        "first_backfill_estimate_error": _error(first_estimate, measured["wall"]),
        "previous": {
            "first": before[0].isoformat(),
            "last": before[-1].isoformat(),
            **_backfill_figures(previous, count),
            # Estimated after the 3-session warm-up only: a short backfill's measure.
            **_estimate_figures(short_estimate, previous["wall"]),
        },
        "warm_up": {
            "sessions": len(backfilled),
            "machine_cpu_per_session_s": round(warm_up["cpu"] / len(backfilled), 1),
            **warm_up["runs"],
        },
    }


def _backfill_figures(timed: dict, count: int) -> dict:
    stats, wall, runs = timed["stats"], timed["wall"], timed["runs"]
    lanes = stats["lanes"]
    ideal = stats["busy_lane_s"] / lanes
    return {
        "sessions_done": timed["outcome"]["done"],
        "wall_s": round(wall, 1),
        "ideal_s": round(ideal, 1),
        "efficiency": round(wall / ideal, 2) if ideal else None,
        "lanes_busy": round(stats["busy_lane_s"] / (lanes * wall), 3),
        "overhead_per_session_s": round((wall - ideal) / count, 2),
        "terminal_span_s": round(stats["last_request_end_at"] - stats["first_request_at"], 1)
        if stats["first_request_at"] and stats["last_request_end_at"]
        else None,
        "requests": stats["requests"],
        "pace_s": round(runs["runs_span_s"] / count, 2) if runs.get("runs_span_s") else None,
        # The machine's busy CPU seconds per session (every process: ours, the daemon, the
        # simulator): on two cores a backfill's pace cannot beat this ÷ the cores.
        "machine_cpu_per_session_s": round(timed["cpu"] / count, 1),
        **runs,
    }


def run(quick: bool, shared: dict) -> tuple[dict, dict, bool]:
    chains = [one_backfill(chain, count) for chain, count in _chosen_runs(quick)]
    met = all(
        c["efficiency"] is not None
        and c["efficiency"] <= EFFICIENCY_TARGET
        and c["estimate_error"] is not None
        and abs(c["estimate_error"]) <= ESTIMATE_TOLERANCE
        for c in chains
    )
    target = {"efficiency_at_most": EFFICIENCY_TARGET, "estimate_within": ESTIMATE_TOLERANCE}
    return {"chains": chains}, target, met
