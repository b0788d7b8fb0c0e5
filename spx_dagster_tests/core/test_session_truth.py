"""One state per session: every read command derives it the same way (issue 11, observed on
43668ef). Plain records here; the instance-backed cases are in defs/test_session_truth_instance.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from spx_dagster.core.error_report import error_report
from spx_dagster.core.failure_categories import FailureCategory
from spx_dagster.core.history import (
    PublishedFact,
    RunFact,
    SessionState,
    decide_retry,
    find_gaps,
    session_records,
)

DAY = dt.date(2024, 3, 15)


def run(n, status, category=None, *, forced=False, day=DAY):
    return RunFact(day, f"run-{n}", status, 1000.0 + n, 1060.0 + n, category, None, forced)


def published(day=DAY):
    return PublishedFact(day, "complete", 10, 1000, 0.99, 100.0)


def test_a_failed_forced_rerun_of_an_intact_session_is_a_failed_attempt_not_a_failing_session():
    runs = [run(1, "SUCCESS"), run(2, "FAILURE", "permission_denied_fs", forced=True)]
    record = session_records([DAY], {DAY: published()}, runs)[DAY]
    assert record.state is SessionState.COMPLETE
    report = error_report(runs, intact=[DAY])
    assert report.failures == 1  # the attempt failed and is listed ...
    assert report.unresolved_sessions == []  # ... but the session is not "still failing"
    assert report.entries[0].resolved


def test_a_pause_is_not_a_failure_uses_no_attempt_and_stays_out_of_error_rates():
    # What `backfill pause` leaves: the running run canceled (its step recorded `unknown` on the
    # way out), the queued ones canceled before they started.
    running = run(1, "CANCELED", "unknown")
    never_started = RunFact(dt.date(2024, 3, 18), "run-q", "CANCELED", None, None, None, None)
    succeeded = run(3, "SUCCESS", day=dt.date(2024, 3, 14))
    runs = [running, never_started, succeeded]
    days = [DAY, dt.date(2024, 3, 18), dt.date(2024, 3, 14)]
    records = session_records(days, {dt.date(2024, 3, 14): published(dt.date(2024, 3, 14))}, runs)
    for day in (DAY, dt.date(2024, 3, 18)):
        assert records[day].state is SessionState.CANCELED
        assert records[day].attempts == 0 and records[day].failures_since_success == 0
    report = error_report(runs)
    assert report.failures == 0 and report.runs == 1 and report.error_rate == 0.0
    decision = decide_retry(records[DAY], max_attempts=3, force=False)
    assert decision.allowed and decision.strategy == FailureCategory.CANCELED.strategy
    gaps = {g.session: g for g in find_gaps(records, today=DAY, min_quality=0.9)}
    assert gaps[DAY].retryable


def test_a_refusal_before_the_close_is_no_attempt():
    runs = [run(1, "FAILURE", "not_closed")]
    record = session_records([DAY], {}, runs)[DAY]
    assert record.state is SessionState.MISSING
    assert record.attempts == 0 and record.failures_since_success == 0
    assert error_report(runs).failures == 0


def test_sessions_a_running_backfill_will_still_run_are_in_progress():
    runs = [run(1, "CANCELED")]
    record = session_records([DAY], {}, runs, pending=[DAY])[DAY]
    assert record.state is SessionState.IN_PROGRESS


@pytest.mark.parametrize("category", list(FailureCategory))
def test_the_advice_after_a_failure_is_what_retry_then_does(category):
    """A 471 used to advise `spx-data retry DATE`, which then refused without --force."""
    runs = [run(1, "FAILURE", category.value)]
    record = session_records([DAY], {}, runs)[DAY]
    advice = category.next_step(DAY)
    decision = decide_retry(record, max_attempts=3, force=False)
    if not category.attempt:
        return  # not a failure: the session is missing or canceled, covered above
    assert record.state is SessionState.FAILED
    if category is FailureCategory.NO_DATA:
        assert "retry" not in advice.split(":")[-1]
    elif decision.allowed:
        assert f"`spx-data retry {DAY}`" in advice
    else:
        assert f"`spx-data retry {DAY} --force`" in advice
        assert decide_retry(record, max_attempts=3, force=True).allowed
    assert category.strategy in decision.reason or decision.allowed


def test_unexpected_status_has_its_own_strategy():
    category = FailureCategory.parse("unexpected_status")
    assert not category.transient
    assert "staged answers" not in category.strategy
