"""The backfill estimate (``core/estimates.py``): terminal time ÷ the fetches the pool admits,
plus the overhead the latest finished backfills measured (or the bound the runs set before any
backfill), plus the backfill daemon's cadence."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from spx_dagster.cli.backfill_plans import pace_text
from spx_dagster.core.cpu_clock import (
    CpuWindow,
    read_cpu,
    reading_from_json,
    reading_to_json,
    usable_cores,
)
from spx_dagster.core.estimates import (
    BACKFILL_DAEMON_CADENCE_S,
    MEASURED_RUNS_WANTED,
    RUN_MACHINE_CPU_S,
    RUN_WORKER_START_S,
    estimate,
    measured_backfill,
)
from spx_dagster.core.history import RunFact

DAYS = [dt.date(2024, 9, 3) + dt.timedelta(days=i) for i in range(30)]


@dataclass
class Published:
    session: dt.date
    status: str = "complete"
    bytes: int = 1_000
    seconds: float | None = 10.0
    fetch_seconds: float | None = 4.0
    cpu_window: tuple | None = None


def windowed(runs: list[RunFact], busy_per_session: float, *, boot: str = "b", cores: int = 2):
    """Published sessions whose CPU windows span their runs, the machine's counter rising by
    ``busy_per_session`` per session across them."""
    return [
        Published(
            run.session,
            cpu_window=(
                boot,
                cores,
                run.start_time,
                run.end_time,
                i * busy_per_session,
                (i + 1) * busy_per_session,
            ),
        )
        for i, run in enumerate(runs)
    ]


def backfill_runs(backfill_id: str, starts: list[float], run_s: float, status="SUCCESS"):
    return [
        RunFact(DAYS[i], f"{backfill_id}-{i}", status, t, t + run_s, backfill_id=backfill_id)
        for i, t in enumerate(starts)
    ]


def test_before_any_backfill_the_runs_bound_the_pace() -> None:
    est = estimate(10, [Published(d) for d in DAYS], fetches_at_once=1)
    assert est.overhead_basis == "runs" and est.parallel_sessions == 3
    assert est.terminal_seconds_per_session == 4.0
    # Three runs at once, each a worker start plus a 10 s run: one ends every (5 + 10) / 3 s;
    # the first takes its whole 15 s (the pipeline filling).
    run = RUN_WORKER_START_S + 10
    assert est.seconds_per_session == pytest.approx(run / 3)
    assert est.overhead_seconds_per_session == pytest.approx(run / 3 - 4)
    assert est.fixed_seconds == pytest.approx(BACKFILL_DAEMON_CADENCE_S + run - run / 3)
    assert est.seconds == pytest.approx(est.fixed_seconds + 10 * run / 3)


def test_before_any_backfill_the_processed_sessions_cpu_bounds_the_pace() -> None:
    # Sessions processed with 20 CPU-s of the machine each (their windows), on 2 cores: a run
    # adds RUN_MACHINE_CPU_S around its window, so one session every (20 + 2) / 2 s, slower
    # than the runs' bound of (5 + 10) / 3 s.
    published = [
        Published(d, cpu_window=("b", 2, 100.0 * i, 100.0 * i + 10, 50.0 * i, 50.0 * i + 20))
        for i, d in enumerate(DAYS[:6])
    ]
    est = estimate(10, published, fetches_at_once=1)
    assert est.overhead_basis == "runs" and est.pace_basis == "cpu"
    assert est.cpu_seconds_per_session == pytest.approx(20.0 + RUN_MACHINE_CPU_S)
    assert est.seconds_per_session == pytest.approx((20.0 + RUN_MACHINE_CPU_S) / 2)
    text = pace_text(est.to_dict())
    assert "as the published sessions' processing used it" in text and "last backfill" not in text
    # A light session leaves the runs' bound in charge.
    light = [
        dataclasses.replace(p, cpu_window=(*p.cpu_window[:5], p.cpu_window[4] + 1.0))
        for p in published
    ]
    assert estimate(10, light, fetches_at_once=1).pace_basis == "runs"


def test_a_terminal_bound_history_has_no_overhead_beyond_the_terminal() -> None:
    slow_fetch = [Published(d, seconds=30.0, fetch_seconds=20.0) for d in DAYS]
    est = estimate(10, slow_fetch, fetches_at_once=1)
    assert est.overhead_seconds_per_session == 0.0
    assert est.seconds_per_session == 20.0
    assert est.seconds == pytest.approx(BACKFILL_DAEMON_CADENCE_S + 15.0 + 10 * 20.0)


def test_the_latest_finished_backfill_measures_the_pace() -> None:
    published = [Published(d) for d in DAYS]
    # An older, slower backfill; then one of 20 runs of 10 s whose ends are 6 s apart: it
    # covers MEASURED_RUNS_WANTED on its own, so the older one says nothing.
    old = backfill_runs("old", [0.0, 50.0, 100.0], 10.0)
    new = backfill_runs("new", [1000.0 + 6 * i for i in range(20)], 10.0)
    measured = measured_backfill(old + new)
    assert measured.pace_s == pytest.approx(6.0) and measured.first_run_s == 10.0
    assert measured.runs == MEASURED_RUNS_WANTED and measured.backfills == 1
    est = estimate(20, published, fetches_at_once=1, runs=old + new)
    assert est.overhead_basis == "backfill"
    assert est.measured_runs == 20 and est.measured_backfills == 1
    assert "measured over the 20 runs of the last backfill" in pace_text(est.to_dict())
    assert est.seconds_per_session == pytest.approx(6.0)
    assert est.overhead_seconds_per_session == pytest.approx(6.0 - 4.0)
    assert est.seconds == pytest.approx(BACKFILL_DAEMON_CADENCE_S + (10.0 - 6.0) + 20 * 6.0)
    # Its own size, estimated from itself: its first start to last end, plus the cadence.
    assert estimate(20, published, runs=new).seconds == pytest.approx(
        BACKFILL_DAEMON_CADENCE_S + 19 * 6.0 + 10.0
    )


def test_a_short_backfill_joins_the_measure_of_the_long_one_before_it() -> None:
    # 17 runs whose ends are 6 s apart, then a 3-run test backfill whose ends are 1 s apart
    # (its runs never queued): the pace is weighted by the runs, 16 gaps of 6 s and 2 of 1 s.
    long = backfill_runs("long", [100.0 + 6 * i for i in range(17)], 10.0)
    short = backfill_runs("short", [500.0, 501.0, 502.0], 10.0)
    measured = measured_backfill(long + short)
    assert measured.runs == 20 and measured.backfills == 2
    assert measured.pace_s == pytest.approx((16 * 6.0 + 2 * 1.0) / 18)
    # The first run (the pipeline filling) is the latest backfill's.
    assert measured.first_run_s == 10.0
    est = estimate(5, [Published(d) for d in DAYS], runs=long + short)
    assert "measured over the 20 runs of the last 2 backfills" in pace_text(est.to_dict())
    # The CPU per session too: windows cover only the short one here, so it alone says.
    windows = {p.session: CpuWindow.from_json(p.cpu_window) for p in windowed(short, 9.0)}
    assert measured_backfill(long + short, windows).cpu_per_session_s == pytest.approx(9.0)


def test_live_small_or_failed_backfills_are_not_measured() -> None:
    live = [
        *backfill_runs("live", [0.0, 6.0, 12.0], 10.0),
        RunFact(DAYS[5], "live-5", "STARTED", 20.0, None, backfill_id="live"),
    ]
    two = backfill_runs("two", [0.0, 6.0], 10.0)
    failed = backfill_runs("failed", [0.0, 6.0, 12.0], 10.0, status="FAILURE")
    alone = [RunFact(d, f"p{i}", "SUCCESS", i * 20.0, i * 20.0 + 10) for i, d in enumerate(DAYS)]
    for runs in (live, two, failed, alone):
        assert measured_backfill(runs) is None


def test_more_fetches_at_once_divide_the_terminal_time_and_concurrency_caps_them() -> None:
    published = [Published(d, seconds=30.0, fetch_seconds=20.0) for d in DAYS]
    two = estimate(10, published, fetches_at_once=2)
    assert two.fetches_at_once == 2 and two.terminal_seconds_per_session == 10.0
    capped = estimate(10, published, fetches_at_once=4, concurrency=1)
    assert capped.parallel_sessions == 1 and capped.fetches_at_once == 1
    assert capped.seconds_per_session == pytest.approx(RUN_WORKER_START_S + 30.0)
    assert capped.fixed_seconds == BACKFILL_DAEMON_CADENCE_S


def test_no_history_uses_the_defaults_and_nothing_to_do_costs_nothing() -> None:
    est = estimate(2, [])
    assert est.basis == "default" and est.overhead_basis == "default"
    assert estimate(0, [Published(d) for d in DAYS]).seconds == 0.0


def test_where_the_cores_are_the_bottleneck_the_machines_cpu_sets_the_pace() -> None:
    # A warm-up backfill of 3 runs started together whose ends bunch 2 s apart, while the
    # machine's counter rose by 30 CPU-s a session on 2 cores: one session every 15 s.
    runs = backfill_runs("warm", [100.0, 100.5, 101.0], 40.0)
    runs = [
        RunFact(r.session, r.run_id, r.status, r.start_time, 140.0 + 2 * i, backfill_id="warm")
        for i, r in enumerate(runs)
    ]
    measured = measured_backfill(
        runs, {p.session: CpuWindow.from_json(p.cpu_window) for p in windowed(runs, 30.0)}
    )
    assert measured.pace_s == pytest.approx(2.0)
    assert measured.cpu_per_session_s == pytest.approx(30.0) and measured.cores == 2
    est = estimate(20, windowed(runs, 30.0), fetches_at_once=1, runs=runs)
    assert est.pace_basis == "cpu" and est.cores == 2
    assert est.cpu_seconds_per_session == pytest.approx(30.0)
    assert est.seconds_per_session == pytest.approx(15.0)
    assert est.overhead_seconds_per_session == pytest.approx(15.0 - 4.0)
    assert "of CPU a session on 2 cores" in pace_text(est.to_dict())
    # Where the runs' ends say the pace is slower than the CPU, they win.
    idle = estimate(20, windowed(runs, 2.0), fetches_at_once=1, runs=runs)
    assert idle.pace_basis == "runs" and idle.seconds_per_session == pytest.approx(4.0)


def test_the_backfills_submission_opens_its_cpu_measure() -> None:
    # Each session's window holds 10 CPU-s, but the machine's counter rose by 60 more from the
    # submission to the first window (worker starts, the daemon): 30 CPU-s a session, not 10.
    submit = json.dumps({"boot": "b", "busy_s": 0.0, "cores": 2, "at": 50.0})
    runs = [
        dataclasses.replace(r, cpu_at_submit=submit)
        for r in backfill_runs("b1", [100.0, 106.0, 112.0], 10.0)
    ]
    published = [
        dataclasses.replace(
            p, cpu_window=(*p.cpu_window[:4], p.cpu_window[4] + 60.0, p.cpu_window[5] + 60.0)
        )
        for p in windowed(runs, 10.0)
    ]
    est = estimate(20, published, fetches_at_once=1, runs=runs)
    assert est.cpu_seconds_per_session == pytest.approx(30.0) and est.pace_basis == "cpu"
    assert est.seconds_per_session == pytest.approx(15.0)
    # A tag from another boot says nothing of this one: the windows alone.
    other = json.dumps({"boot": "x", "busy_s": 0.0, "cores": 2, "at": 50.0})
    runs = [dataclasses.replace(r, cpu_at_submit=other) for r in runs]
    assert estimate(20, published, runs=runs).cpu_seconds_per_session == pytest.approx(10.0)


def test_cpu_windows_not_taken_during_the_backfill_or_across_boots_are_not_used() -> None:
    runs = backfill_runs("warm", [100.0, 106.0, 112.0], 10.0)
    published = windowed(runs, 30.0)
    # The last session was published again later, by a run outside this backfill.
    later = Published(runs[-1].session, cpu_window=("b", 2, 500.0, 510.0, 900.0, 930.0))
    assert estimate(5, [*published[:-1], later], runs=runs).pace_basis == "runs"
    rebooted = [
        *published[:-1],
        Published(runs[-1].session, cpu_window=("c", 2, 112.0, 122.0, 0.0, 30.0)),
    ]
    assert estimate(5, rebooted, runs=runs).cpu_seconds_per_session is None
    assert estimate(5, published, runs=runs).cpu_seconds_per_session == pytest.approx(30.0)


def test_the_machines_busy_cpu_is_read_from_proc() -> None:
    first = read_cpu()
    if first is None:
        pytest.skip("no /proc/stat here: the estimate goes on without CPU readings")
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        sum(range(10_000))  # busy: the counter must rise
    second = read_cpu()
    assert second.boot == first.boot and second.cores == usable_cores() >= 1
    assert second.busy_s > first.busy_s and second.at > first.at
    window = CpuWindow.between(first, second)
    assert window.busy_s == pytest.approx(second.busy_s - first.busy_s)
    assert CpuWindow.from_json(list(window.as_tuple())) == window
    assert CpuWindow.between(second, first) is None
    again = reading_from_json(reading_to_json(first))
    assert (again.boot, again.cores) == (first.boot, first.cores)
    assert again.busy_s == pytest.approx(first.busy_s, abs=0.01)
    assert again.at == pytest.approx(first.at, abs=0.001)
    assert reading_from_json({"boot": "x"}) is None and CpuWindow.from_json("nope") is None


def test_the_first_session_of_a_process_claims_its_start_up() -> None:
    if read_cpu() is None:
        pytest.skip("no /proc/stat here: the estimate goes on without CPU readings")
    # A fresh process, as a run worker loading the code location, then running its session.
    script = (
        "import time; from spx_dagster.core import cpu_clock as c; time.sleep(0.2); "
        "first = c.session_start_reading(); second = c.session_start_reading(); "
        "print(second.at - first.at)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # The first window opens at the load; the next ones when their fetch starts.
    assert float(out.stdout) >= 0.2
