"""Session states, gap analysis and retry decisions from plain records."""

import datetime as dt

from spx_dagster.core.history import (
    GapKind,
    PublishedFact,
    RunFact,
    SessionState,
    decide_retry,
    estimate,
    find_gaps,
    session_records,
)

D1, D2, D3, D4, D5, D6 = (dt.date(2024, 3, d) for d in (11, 12, 13, 14, 15, 18))


def run(day, n, status, category=None, forced=False):
    return RunFact(day, f"run-{day}-{n}", status, 1000.0 + n, 1060.0 + n, category, None, forced)


def published(day, status="complete", quality=0.99, seconds=100.0, nbytes=1000):
    return PublishedFact(day, status, 10, nbytes, quality, seconds)


def records():
    facts = {D1: published(D1), D3: published(D3, "no_data"), D4: published(D4, quality=0.5)}
    runs = [
        run(D1, 1, "SUCCESS"),
        run(D2, 1, "FAILURE", "rate_limited"),
        run(D2, 2, "FAILURE", "permission"),
        run(D5, 1, "STARTED"),
    ]
    return session_records([D1, D2, D3, D4, D5, D6], facts, runs, corrupt=[D4])


def test_states_follow_manifests_runs_and_checks():
    recs = records()
    assert {d: r.state for d, r in recs.items()} == {
        D1: SessionState.COMPLETE,
        D2: SessionState.FAILED,
        D3: SessionState.NO_DATA,
        D4: SessionState.CORRUPT,
        D5: SessionState.IN_PROGRESS,
        D6: SessionState.MISSING,
    }
    assert recs[D2].attempts == 2 and recs[D2].failures_since_success == 2
    assert recs[D2].last_error_category == "permission"


def test_gaps_are_categorised_and_corrupt_comes_first():
    gaps = find_gaps(records(), today=D6, min_quality=0.9)
    kinds = {g.session: g.kind for g in gaps}
    assert kinds == {D2: GapKind.FAILED, D4: GapKind.CORRUPT, D6: GapKind.NEVER_ATTEMPTED}
    assert gaps[0].session == D4
    failed = next(g for g in gaps if g.session == D2)
    assert failed.error_category == "permission" and not failed.retryable


def test_low_quality_and_no_data_on_request():
    recs = records()
    recs[D4].state = SessionState.COMPLETE
    gaps = find_gaps(recs, today=D6, min_quality=0.9, include_no_data=True)
    kinds = {g.session: g.kind for g in gaps}
    assert kinds[D4] is GapKind.LOW_QUALITY and kinds[D3] is GapKind.NO_DATA


def test_recent_and_volatile_sessions_rank_higher():
    recs = session_records([D1, D6], {}, [])
    gaps = find_gaps(recs, today=D6, min_quality=0.9)
    assert [g.session for g in gaps] == [D6, D1]
    gaps = find_gaps(recs, today=D6, min_quality=0.9, volatility={D1: 0.05})
    assert [g.session for g in gaps] == [D1, D6]


def test_estimate_uses_history_medians_or_defaults():
    est = estimate(
        4, [published(D1, seconds=100, nbytes=10), published(D3, seconds=300, nbytes=30)]
    )
    # Without fetch-stage seconds the whole run is taken as terminal time.
    assert est.basis == "history" and est.bytes == 80
    assert est.seconds_per_session == 200 and est.seconds == est.fixed_seconds + 4 * 200
    assert estimate(2, []).basis == "default"


def test_retry_respects_the_cap_and_force():
    recs = records()
    decision = decide_retry(recs[D2], max_attempts=2, force=False)
    assert not decision.allowed and "retry.max_attempts" in decision.reason
    assert decide_retry(recs[D2], max_attempts=2, force=True).allowed
    assert not decide_retry(recs[D5], max_attempts=3, force=True).allowed  # in progress


def test_permanent_failures_are_not_retried_automatically():
    recs = session_records([D2], {}, [run(D2, 1, "FAILURE", "permission")])
    decision = decide_retry(recs[D2], max_attempts=3, force=False)
    assert not decision.allowed and "subscription" in decision.strategy


def test_forced_runs_do_not_count_against_the_cap():
    runs = [run(D2, 1, "FAILURE", "truncated", forced=True), run(D2, 2, "FAILURE", "truncated")]
    rec = session_records([D2], {}, runs)[D2]
    assert rec.failures_since_success == 1 and rec.attempts == 2
