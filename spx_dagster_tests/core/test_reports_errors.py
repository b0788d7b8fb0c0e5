"""Error history patterns from run records (core.error_report, plain Python)."""

from __future__ import annotations

import datetime as dt

from spx_dagster.core.calendar import ET
from spx_dagster.core.error_report import error_report, message_signature
from spx_dagster.core.history import RunFact, retry_strategy

MON, TUE, WED, FRI = (dt.date(2024, 3, d) for d in (11, 12, 13, 15))


def at(day: dt.date, hour: int, minute: int = 0) -> float:
    """An epoch time on ``day`` at ``hour`` ET."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ET).timestamp()


def run(session, n, status, when, category=None, message=None):
    return RunFact(
        session=session,
        run_id=f"{session}-{n}",
        status=status,
        start_time=when,
        end_time=when + 60 if status not in ("STARTED", "QUEUED") else None,
        error_category=category,
        error_message=message,
    )


def history() -> list[RunFact]:
    throttled = "ThetaDataError: 429 Too Many Requests for {} after {} attempts"
    return [
        # MON: throttled twice, then fixed by a retry.
        run(MON, 1, "FAILURE", at(TUE, 18, 31), "rate_limited", throttled.format(MON, 5)),
        run(MON, 2, "FAILURE", at(TUE, 18, 45), "rate_limited", throttled.format(MON, 7)),
        run(MON, 3, "SUCCESS", at(TUE, 19, 5)),
        # TUE: a permanent failure, never fixed.
        run(TUE, 1, "FAILURE", at(WED, 18, 40), "permission", "PermissionDenied: 471 greeks"),
        # WED: throttled three times in the same evening hour, still failing.
        run(WED, 1, "FAILURE", at(FRI, 18, 5), "rate_limited", throttled.format(WED, 5)),
        run(WED, 2, "FAILURE", at(FRI, 18, 20), "rate_limited", throttled.format(WED, 6)),
        run(WED, 3, "FAILURE", at(FRI, 18, 50), "rate_limited", throttled.format(WED, 9)),
        # FRI: fine; and a run in progress that is not a finished run yet.
        run(FRI, 1, "SUCCESS", at(FRI, 18, 31)),
        run(FRI, 2, "STARTED", at(FRI, 20, 0)),
    ]


def test_signature_blanks_dates_numbers_ids_and_urls_but_keeps_the_problem() -> None:
    text = "TerminalUnreachable: no terminal at http://{} on {} (run {})"
    a = message_signature(text.format("127.0.0.1:25503/v3", "2024-03-15", "9f3a2b1c4d"))
    b = message_signature(text.format("10.0.0.7:25510/v3", "2023-01-04", "0a1b2c3d4e"))
    assert a == b
    assert "TerminalUnreachable: no terminal at <url>" in a
    assert message_signature("PermissionDenied: 471 greeks") != a
    assert message_signature(None) == message_signature("")


def test_failures_are_grouped_by_category_with_advice_and_resolution() -> None:
    report = error_report(history())
    assert report.failures == 6
    assert report.runs == 8  # the run in progress is not finished
    assert report.error_rate == 6 / 8
    assert report.failed_sessions == 3
    assert report.unresolved_sessions == [TUE, WED]
    by_category = {p.category: p for p in report.by_category}
    assert [p.category for p in report.by_category] == ["rate_limited", "permission"]
    throttled = by_category["rate_limited"]
    assert (throttled.count, throttled.sessions, throttled.unresolved_sessions) == (5, 2, 1)
    assert throttled.transient and throttled.advice == retry_strategy("rate_limited")
    assert not by_category["permission"].transient
    # The five throttling messages differ only in dates and counts: one signature.
    assert report.by_signature[0].count == 5
    assert report.by_signature[0].categories == ["rate_limited"]


def test_entries_are_newest_first_with_attempt_numbers() -> None:
    report = error_report(history())
    first = report.entries[0]
    assert (first.session, first.attempt, first.attempts, first.resolved) == (WED, 3, 3, False)
    mon = [e for e in report.entries if e.session == MON]
    assert [e.attempt for e in mon] == [2, 1] and all(e.resolved for e in mon)
    assert all(e.when is not None and e.when.tzinfo is not None for e in report.entries)


def test_when_patterns_and_observations() -> None:
    report = error_report(history())
    assert report.by_weekday == {"Tue": 2, "Wed": 1, "Fri": 3}
    assert report.by_hour == {"18:00": 6}
    assert report.by_session_weekday == {"Mon": 2, "Tue": 1, "Wed": 3}
    text = "\n".join(report.observations)
    assert "5 of 6 failures are rate_limited" in text
    # Every failure is in the 18:00 hour, but so are 7 of the 8 runs: not a cluster.
    assert "happened between" not in text
    assert "failed 3+ times without a success: 2024-03-13" in text
    assert "failed with permission, which a retry alone will not fix" in text


def test_range_selects_sessions_not_run_dates() -> None:
    report = error_report(history(), start=TUE, end=TUE)
    assert report.failures == 1 and report.runs == 1
    assert report.by_category[0].category == "permission"
    assert report.to_dict()["errors"][0]["session"] == "2024-03-12"


def test_a_failure_without_tags_is_unknown_with_a_pointer() -> None:
    report = error_report([run(MON, 1, "FAILURE", at(TUE, 3))])
    entry = report.entries[0]
    assert entry.category == "unknown" and "Dagster UI" in entry.message
    assert report.by_category[0].advice == retry_strategy("unknown")


def test_no_runs_no_errors() -> None:
    report = error_report([])
    assert report.failures == 0 and report.error_rate is None and report.observations == []


def test_failures_clustered_at_an_hour_most_runs_avoid_are_a_pattern() -> None:
    days = [dt.date(2024, 4, d) for d in (1, 2, 3, 4, 5, 8, 9, 10)]
    runs = [run(day, 1, "SUCCESS", at(day, 18, 35)) for day in days[:5]]
    runs += [
        run(day, 1, "FAILURE", at(day, 3, 10), "disconnected", "474 lost connection")
        for day in days[5:]
    ]
    text = "\n".join(error_report(runs).observations)
    assert (
        "3 of 3 failures happened between 03:00 and the next hour (ET), where 38% of runs are"
        in text
    )
