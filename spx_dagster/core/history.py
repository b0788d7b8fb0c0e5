"""The state of every session, gap analysis and retry decisions, from plain records.

Nothing here reads Dagster or the disk: ``defs/instance_queries.py`` turns Dagster's instance
(runs, their tags, check results) into ``RunFact`` records and ``core/storage`` turns manifests
into ``PublishedFact`` records; this module combines them with set arithmetic, so that the CLI,
the gap sensor and the tests share one definition of "missing", "failed" and "corrupt".
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from spx_dagster.core import calendar, revisits
from spx_dagster.core.estimates import GapEstimate, estimate  # noqa: F401 (one estimator)
from spx_dagster.core.failure_categories import NOT_ATTEMPTS, FailureCategory


class SessionState(StrEnum):
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELED = "canceled"  # the last run was paused or canceled: not a failure
    NO_DATA = "no_data"
    CORRUPT = "corrupt"
    IN_PROGRESS = "in_progress"
    MISSING = "missing"


class GapKind(StrEnum):
    NEVER_ATTEMPTED = "never_attempted"
    FAILED = "failed"
    NO_DATA = "no_data"  # the vendor answered "no data"; re-checked only on request
    CORRUPT = "corrupt"
    LOW_QUALITY = "low_quality"
    INCOMPLETE = "incomplete"  # published with vendor holes; the gap sensor revisits it


@dataclass(frozen=True)
class RunFact:
    """One Dagster run of one session."""

    session: dt.date
    run_id: str
    status: str  # Dagster run status name: SUCCESS, FAILURE, CANCELED, STARTED, QUEUED, ...
    start_time: float | None
    end_time: float | None
    error_category: str | None = None
    error_message: str | None = None
    forced: bool = False  # launched with --force (does not count against the attempt cap)
    revisit: int | None = None  # a gap sensor revisit: its days after the first publish
    backfill_id: str | None = None  # the backfill that launched it (Dagster's dagster/backfill)
    # Its backfill's submission: the machine's busy CPU then (``core.cpu_clock``, as JSON)
    cpu_at_submit: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.status in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}

    @property
    def refused(self) -> bool:
        """Ended without being an attempt: canceled (a pause, a stop) or refused before it did
        anything (the session had not closed)."""
        if self.in_progress or self.status == "SUCCESS":
            return False
        return self.status == "CANCELED" or (self.error_category or "") in NOT_ATTEMPTS

    @property
    def attempt(self) -> bool:
        """A finished run that used up an attempt (success or failure)."""
        return not self.in_progress and not self.refused

    @property
    def failed(self) -> bool:
        """A finished run that failed: an attempt, not a pause, a cancel or a refusal."""
        return self.status in {"FAILURE", "CANCELED"} and not self.refused

    @property
    def before_close(self) -> bool:
        """Refused because the session had not closed: says nothing about its data."""
        return self.refused and self.error_category == FailureCategory.NOT_CLOSED

    @property
    def canceled(self) -> bool:
        return self.refused and not self.before_close

    @property
    def duration_s(self) -> float | None:
        if self.start_time and self.end_time:
            return self.end_time - self.start_time
        return None


@dataclass(frozen=True)
class PublishedFact:
    """What a session's manifest says."""

    session: dt.date
    status: str  # "complete" or "no_data"
    rows: int
    bytes: int
    quality: float | None
    seconds: float | None
    created_at: str | None = None
    underlying_range: float | None = None  # (high - low) / open of the index that day
    holes: int = 0  # core.revisits.session_holes of its quality
    first_published_at: str | None = None
    revisits: tuple[int, ...] = ()  # after_days of the revisits the manifest records


@dataclass
class SessionRecord:
    session: dt.date
    state: SessionState
    rows: int = 0
    bytes: int = 0
    quality: float | None = None
    duration_s: float | None = None
    attempts: int = 0
    failures_since_success: int = 0
    last_run_id: str | None = None
    last_run_status: str | None = None
    last_error_category: str | None = None
    last_error_message: str | None = None
    holes: int = 0  # vendor holes of the published session (core.revisits)
    revisits_done: list[int] = field(default_factory=list)  # after_days, recorded or run
    next_revisit: dt.date | None = None  # ET day the next revisit is due; None: none left

    def to_dict(self) -> dict:
        d = asdict(self)
        d["session"] = self.session.isoformat()
        d["state"] = self.state.value
        d["next_revisit"] = self.next_revisit.isoformat() if self.next_revisit else None
        return d


def _started(run: RunFact) -> float:
    # A run that has not started (queued) is newer than every started one.
    return run.start_time if run.start_time is not None else math.inf


def _last_counted(day_runs: list[RunFact]) -> RunFact | None:
    """The newest finished run that says something about the session's data: a refusal because
    the session had not closed says nothing (the session is simply not processed yet)."""
    return next((r for r in reversed(day_runs) if not r.in_progress and not r.before_close), None)


def session_records(
    expected: Iterable[dt.date],
    published: Mapping[dt.date, PublishedFact],
    runs: Iterable[RunFact],
    *,
    corrupt: Iterable[dt.date] = (),
    pending: Iterable[dt.date] = (),
) -> dict[dt.date, SessionRecord]:
    """Combine expected sessions, manifests, runs and corrupt sessions into one record each.

    A manifest makes a session complete (or no_data) whatever its runs say, unless it is known
    corrupt; a run in progress, or a place in a running backfill (``pending``), wins over
    everything else because it is about to change the state.
    """
    pending_set = set(pending)
    by_session: dict[dt.date, list[RunFact]] = defaultdict(list)
    for run in runs:
        by_session[run.session].append(run)
    corrupt_set = set(corrupt)
    out: dict[dt.date, SessionRecord] = {}
    for day in expected:
        day_runs = sorted(by_session.get(day, ()), key=_started)
        record = SessionRecord(session=day, state=SessionState.MISSING)
        record.attempts = sum(1 for r in day_runs if r.attempt)
        failures = 0
        for r in day_runs:
            if r.status == "SUCCESS":
                failures = 0
            elif r.failed and not r.forced:
                failures += 1
        record.failures_since_success = failures
        if day_runs:
            last = day_runs[-1]
            record.last_run_id = last.run_id
            record.last_run_status = last.status
            record.duration_s = last.duration_s
            last_failure = next((r for r in reversed(day_runs) if r.failed), None)
            if last_failure is not None:
                record.last_error_category = last_failure.error_category or "unknown"
                record.last_error_message = last_failure.error_message
        fact = published.get(day)
        if fact is not None:
            record.rows, record.bytes, record.quality = fact.rows, fact.bytes, fact.quality
            record.duration_s = fact.seconds if fact.seconds is not None else record.duration_s
            record.state = (
                SessionState.NO_DATA if fact.status == "no_data" else SessionState.COMPLETE
            )
            if day in corrupt_set:
                record.state = SessionState.CORRUPT
            _add_revisits(record, fact, day_runs)
        elif (last_counted := _last_counted(day_runs)) is not None and last_counted.failed:
            record.state = SessionState.FAILED
        elif last_counted is not None and last_counted.canceled:
            record.state = SessionState.CANCELED
        elif day in corrupt_set:
            record.state = SessionState.CORRUPT
        if (day_runs and day_runs[-1].in_progress) or day in pending_set:
            record.state = SessionState.IN_PROGRESS
        out[day] = record
    return out


def _add_revisits(record: SessionRecord, fact: PublishedFact, day_runs: list[RunFact]) -> None:
    """The revisit schedule of a published session with holes: revisits recorded in its
    manifest or spent by a finished revisit run (one that failed is not run again)."""
    record.holes = fact.holes
    if not fact.holes or fact.status != "complete":
        return
    done = set(fact.revisits) | {r.revisit for r in day_runs if r.revisit and not r.in_progress}
    record.revisits_done = sorted(done)
    first = revisits.parse_time(fact.first_published_at or fact.created_at)
    due = revisits.next_revisit_at(first, done) if first is not None else None
    record.next_revisit = due.astimezone(calendar.ET).date() if due is not None else None


@dataclass
class Gap:
    session: dt.date
    kind: GapKind
    priority: float
    reasons: list[str] = field(default_factory=list)
    error_category: str | None = None
    attempts: int = 0
    retryable: bool = True
    next_revisit: dt.date | None = None  # incomplete sessions: the next revisit's (ET) day

    def to_dict(self) -> dict:
        d = asdict(self)
        d["session"] = self.session.isoformat()
        d["kind"] = self.kind.value
        d["next_revisit"] = self.next_revisit.isoformat() if self.next_revisit else None
        return d


_KIND_WEIGHT = {
    GapKind.CORRUPT: 40.0,  # data exists but is wrong: worst for a backtest
    GapKind.FAILED: 25.0,
    GapKind.NEVER_ATTEMPTED: 20.0,
    GapKind.LOW_QUALITY: 10.0,
    GapKind.INCOMPLETE: 5.0,  # published; the gap sensor revisits it on its own schedule
    GapKind.NO_DATA: 0.0,
}


def gap_priority(
    kind: GapKind,
    session: dt.date,
    *,
    today: dt.date,
    error_category: str | None = None,
    volatility: float | None = None,
) -> float:
    """Higher first: kind, then recency (a researcher's latest data matters most), failure type
    (transient failures are cheap to fix and likely to succeed), then market volatility (days
    that moved the most are the ones backtests are most sensitive to)."""
    age_days = max((today - session).days, 0)
    recency = 30.0 / (1.0 + age_days / 30.0)  # 30 for today, ~15 a month ago, ~2 after a year
    score = _KIND_WEIGHT[kind] + recency
    if kind is GapKind.FAILED:
        score += 10.0 if FailureCategory.parse(error_category).transient else -15.0
    if volatility is not None:
        score += min(volatility * 500.0, 15.0)  # a 3% range adds the full 15
    return round(score, 3)


def find_gaps(
    records: Mapping[dt.date, SessionRecord],
    *,
    today: dt.date,
    min_quality: float,
    include_no_data: bool = False,
    volatility: Mapping[dt.date, float] | None = None,
) -> list[Gap]:
    """Every session that is not complete and trustworthy, highest priority first."""
    gaps: list[Gap] = []
    vol = volatility or {}
    for day, rec in records.items():
        kind: GapKind | None = None
        reasons: list[str] = []
        if rec.state is SessionState.MISSING:
            kind, reasons = GapKind.NEVER_ATTEMPTED, ["never attempted"]
        elif rec.state is SessionState.CANCELED:
            kind = GapKind.NEVER_ATTEMPTED
            reasons = ["the last run was paused or canceled before it published (not a failure)"]
        elif rec.state is SessionState.FAILED:
            kind = GapKind.FAILED
            reasons = [f"last run failed ({rec.last_error_category or 'unknown'})"]
        elif rec.state is SessionState.CORRUPT:
            kind, reasons = GapKind.CORRUPT, ["published files do not match their checksums"]
        elif rec.state is SessionState.NO_DATA and include_no_data:
            kind, reasons = GapKind.NO_DATA, ["the vendor answered no data"]
        elif rec.state is SessionState.COMPLETE and rec.holes:
            kind, reasons = GapKind.INCOMPLETE, [_incomplete_reason(rec, min_quality)]
        elif (
            rec.state is SessionState.COMPLETE
            and rec.quality is not None
            and rec.quality < min_quality
        ):
            kind = GapKind.LOW_QUALITY
            reasons = [f"quality {rec.quality:.3f} below quality.min_score {min_quality}"]
        if kind is None:
            continue
        category = rec.last_error_category if kind is GapKind.FAILED else None
        retryable = kind is not GapKind.FAILED or FailureCategory.parse(category).transient
        gaps.append(
            Gap(
                session=day,
                kind=kind,
                priority=gap_priority(
                    kind, day, today=today, error_category=category, volatility=vol.get(day)
                ),
                reasons=reasons,
                error_category=category,
                attempts=rec.attempts,
                retryable=retryable,
                next_revisit=rec.next_revisit if kind is GapKind.INCOMPLETE else None,
            )
        )
    gaps.sort(key=lambda g: (-g.priority, g.session))
    return gaps


def _incomplete_reason(rec: SessionRecord, min_quality: float) -> str:
    text = (
        f"{rec.holes} vendor hole(s) (listed expirations without data, or coverage below its "
        "threshold)"
    )
    if rec.quality is not None and rec.quality < min_quality:
        text += f"; quality {rec.quality:.3f} below quality.min_score {min_quality}"
    if rec.next_revisit is not None:
        return f"{text}; next revisit {rec.next_revisit.isoformat()}"
    days = " and ".join(str(d) for d in rec.revisits_done) or "none"
    return f"{text}; no revisit left (done after {days} day(s)); re-run with retry --force"


# --- retries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryDecision:
    session: dt.date
    allowed: bool
    strategy: str  # what the retry does differently, from the failure category
    reason: str


def retry_strategy(category: str | None) -> str:
    return FailureCategory.parse(category).strategy


def record_category(record: SessionRecord) -> FailureCategory | None:
    """What a retry of ``record``'s session has to mend: corrupt files, a cancel, or the last
    failure; None for a session that never ran."""
    if record.state is SessionState.CORRUPT:
        return FailureCategory.CORRUPT
    if record.state is SessionState.CANCELED:
        return FailureCategory.CANCELED
    if record.last_error_category is None:
        return None
    return FailureCategory.parse(record.last_error_category)


def decide_retry(record: SessionRecord, *, max_attempts: int, force: bool) -> RetryDecision:
    """Whether ``record``'s session may be retried now, and how.

    The refusal for a permanent failure and the advice printed after it come from the same
    ``FailureCategory``, so what a message tells the user to run is what ``retry`` accepts.
    """
    day = record.session
    if record.state is SessionState.IN_PROGRESS:
        return RetryDecision(day, False, "", "a run of this session is in progress")
    if record.state is SessionState.COMPLETE and not force:
        return RetryDecision(day, False, "", "already complete (use --force to re-run)")
    category = record_category(record)
    strategy = category.strategy if category is not None else retry_strategy(None)
    if force:
        return RetryDecision(day, True, strategy, "forced")
    if record.failures_since_success >= max_attempts:
        return RetryDecision(
            day,
            False,
            strategy,
            f"{record.failures_since_success} failed attempts reached retry.max_attempts "
            f"({max_attempts}); use --force to retry anyway",
        )
    if category is not None and category.retry_needs_force:
        return RetryDecision(
            day,
            False,
            strategy,
            f"the failure ({category}) will not fix itself: {strategy}; then --force",
        )
    return RetryDecision(day, True, strategy, "eligible")
