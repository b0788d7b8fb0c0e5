"""The backfill estimate (``core/estimates.py``): terminal time ÷ the fetches the pool admits,
plus the overhead the latest finished backfill measured (or the bound the runs set before any
backfill), plus the backfill daemon's cadence."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from spx_dagster.core.estimates import (
    BACKFILL_DAEMON_CADENCE_S,
    RUN_WORKER_START_S,
    estimate,
    measured_backfill,
)
from spx_dagster.core.history import RunFact

DAYS = [dt.date(2024, 9, 3) + dt.timedelta(days=i) for i in range(6)]


@dataclass
class Published:
    session: dt.date
    status: str = "complete"
    bytes: int = 1_000
    seconds: float | None = 10.0
    fetch_seconds: float | None = 4.0


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


def test_a_terminal_bound_history_has_no_overhead_beyond_the_terminal() -> None:
    slow_fetch = [Published(d, seconds=30.0, fetch_seconds=20.0) for d in DAYS]
    est = estimate(10, slow_fetch, fetches_at_once=1)
    assert est.overhead_seconds_per_session == 0.0
    assert est.seconds_per_session == 20.0
    assert est.seconds == pytest.approx(BACKFILL_DAEMON_CADENCE_S + 15.0 + 10 * 20.0)


def test_the_latest_finished_backfill_measures_the_pace() -> None:
    published = [Published(d) for d in DAYS]
    # An older, slower backfill; then one whose 4 runs of 10 s end 6 s apart.
    old = backfill_runs("old", [0.0, 50.0, 100.0], 10.0)
    new = backfill_runs("new", [1000.0, 1006.0, 1012.0, 1018.0], 10.0)
    measured = measured_backfill(old + new)
    assert measured.pace_s == pytest.approx(6.0) and measured.first_run_s == 10.0
    est = estimate(20, published, fetches_at_once=1, runs=old + new)
    assert est.overhead_basis == "backfill"
    assert est.seconds_per_session == pytest.approx(6.0)
    assert est.overhead_seconds_per_session == pytest.approx(6.0 - 4.0)
    assert est.seconds == pytest.approx(BACKFILL_DAEMON_CADENCE_S + (10.0 - 6.0) + 20 * 6.0)
    # Its own size, estimated from itself: its first start to last end, plus the cadence.
    assert estimate(4, published, runs=new).seconds == pytest.approx(
        BACKFILL_DAEMON_CADENCE_S + 28.0
    )


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
