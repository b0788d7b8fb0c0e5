"""Sensors: fill gaps in the history, and record why runs failed.

``spx_gap_fill`` (STOPPED by default, since it launches work: start it in the UI under
Automation, or with ``dagster sensor start spx_gap_fill -m spx_dagster.definitions``) requests
a run per missing, failed or corrupt session, highest priority first, a bounded batch per tick
(sessions in flight count against it), never the latest session before its daily schedule tick
has had its turn, and nothing while a backfill runs. Which sessions are gaps is set arithmetic over
partition keys and ``get_materialized_partitions`` (never ``get_status_by_partition``); what a
gap is, its priority and whether a failed session may be retried are ``core.history``'s
(``find_gaps``, ``decide_retry``), shared with ``spx-data gaps`` and ``retry``.

It also revisits sessions published with vendor holes (``core.revisits``: no-data answers for
listed expirations, or a ``coverage`` score below its threshold): a full re-run of the session,
tagged ``spx/revisit`` = 1 or 7, once at least 1 and once at least 7 days after its first
publish, never a third time, never while a run of the session is in flight, at most
``REVISITS_PER_TICK`` per tick (ahead of gaps, so a long backfill of missing sessions does not
delay them). Run keys ``revisit-YYYY-MM-DD-dN`` make each revisit run at most once, and a
finished revisit run spends its revisit whatever its outcome; the publish keeps the previous
session when the revisit finds less (``core.storage.republish``).

``spx_failure_category`` (RUNNING by default) tags every failed run that carries no failure
category with one (``crash`` when the run worker died, ``corrupt`` when a blocking checksum
check failed, ``unknown`` for an uncategorised step error), and ``spx_canceled_category`` tags
canceled runs ``interrupted``, so ``spx-data errors``, ``gaps`` and ``retry`` see every failure.

No path loops forever: every run of a session counts as an attempt (``run_facts``), the gap
sensor stops at ``retry.max_attempts`` failures since the last success and never retries a
failure that will not fix itself (``decide_retry``), run keys carry the attempt number (sensor
run keys are deduplicated forever), and ``run_retries`` in ``dagster.yaml`` re-runs only crashed
runs, a bounded number of times, each of which is one more counted failure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from spx_dagster.core import calendar, revisits
from spx_dagster.core.failure_categories import FailureCategory
from spx_dagster.core.failures import MESSAGE_TAG_CHARS
from spx_dagster.core.history import (
    GapKind,
    SessionRecord,
    SessionState,
    decide_retry,
    find_gaps,
    session_records,
)
from spx_dagster.core.run_limits import MAX_CONCURRENT_RUNS
from spx_dagster.core.storage import published_sessions
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    PARQUET,
    REVISIT_TAG,
    TRIGGER_TAG,
)
from spx_dagster.defs.dagster_internals import BulkActionsFilter, BulkActionStatus, DagsterEventType
from spx_dagster.defs.instance_queries import corrupt_sessions, run_facts
from spx_dagster.defs.jobs import session_job
from spx_dagster.defs.partitions import SESSIONS, session_key
from spx_dagster.defs.resources import SpxSettingsResource
from spx_dagster.defs.schedules import DAILY_TIME
from spx_dagster.defs.session_state import published_facts

GAP_SENSOR_NAME = "spx_gap_fill"
GAP_SENSOR_INTERVAL_S = 15
# Session runs in flight (queued or running) the sensor tops up to each tick: enough to keep the
# run queue busy, few enough that a newly found gap or a higher priority is picked up soon.
GAP_BATCH_SIZE = 2 * MAX_CONCURRENT_RUNS
# The gap sensor leaves a session alone until its daily schedule tick has had time to start it.
SCHEDULE_GRACE = dt.timedelta(minutes=30)
# Revisits of sessions with vendor holes requested per tick: a few, ahead of the gaps.
REVISITS_PER_TICK = 2


def _clock(time_of_day: dt.time) -> dt.timedelta:
    return dt.timedelta(hours=time_of_day.hour, minutes=time_of_day.minute)


_DUE_AFTER_EOD = _clock(DAILY_TIME) + SCHEDULE_GRACE - _clock(calendar.EOD_REPORT_TIME)
# Gap kinds the sensor requests: low quality and no-data sessions are published answers, so
# re-running them could repeat forever; `spx-data retry --force` re-runs them on request.
REQUESTED_KINDS = frozenset({GapKind.NEVER_ATTEMPTED, GapKind.FAILED, GapKind.CORRUPT})

ATTEMPT_TAG = "spx/attempt"
GAP_KIND_TAG = "spx/gap_kind"


def gap_run_key(session: dt.date, attempt: int) -> str:
    """``gap-YYYY-MM-DD-aN``: a new key per attempt, since sensor run keys are never reused."""
    return f"gap-{session_key(session)}-a{attempt}"


def revisit_run_key(session: dt.date, after_days: int) -> str:
    """``revisit-YYYY-MM-DD-dN``: one key per revisit, so each is requested at most once."""
    return f"revisit-{session_key(session)}-d{after_days}"


def last_due_session(now: dt.datetime) -> dt.date:
    """The latest session whose daily schedule tick (plus a grace period) has passed.

    Later sessions belong to the schedule; leaving them alone keeps the two from running one
    session twice.
    """
    return calendar.latest_closed_session(now.astimezone(calendar.ET) - _DUE_AFTER_EOD)


@dataclass(frozen=True)
class GapRequest:
    """One session the gap sensor asks for, and why."""

    session: dt.date
    kind: GapKind
    attempt: int  # runs of the session so far + 1
    priority: float

    @property
    def run_key(self) -> str:
        return gap_run_key(self.session, self.attempt)

    def run_request(self) -> dg.RunRequest:
        return _sensor_run_request(
            self.session, self.run_key, {ATTEMPT_TAG: str(self.attempt), GAP_KIND_TAG: self.kind}
        )


@dataclass(frozen=True)
class RevisitRequest:
    """One published session with vendor holes the gap sensor re-runs, and which revisit."""

    session: dt.date
    after_days: int
    holes: int

    @property
    def run_key(self) -> str:
        return revisit_run_key(self.session, self.after_days)

    def run_request(self) -> dg.RunRequest:
        tags = {GAP_KIND_TAG: GapKind.INCOMPLETE, REVISIT_TAG: str(self.after_days)}
        return _sensor_run_request(self.session, self.run_key, tags)


def _sensor_run_request(session: dt.date, run_key: str, tags: dict[str, str]) -> dg.RunRequest:
    """A run of ``session`` the gap sensor asks for (its trigger tag added to ``tags``)."""
    return dg.RunRequest(
        run_key=run_key,
        partition_key=session_key(session),
        tags={TRIGGER_TAG: "gap_sensor", **{k: str(v) for k, v in tags.items()}},
    )


@dataclass
class GapFillPlan:
    """What one evaluation found and what it requests."""

    first: dt.date
    last: dt.date
    expected: int
    materialized: int
    requests: list[GapRequest] = field(default_factory=list)
    in_progress: int = 0
    waiting: int = 0  # eligible, left for a later tick by the batch bound
    held: dict[dt.date, str] = field(default_factory=dict)  # not requested, with the reason
    revisits: list[RevisitRequest] = field(default_factory=list)
    next_revisit_due: dt.datetime | None = None  # the earliest revisit not due yet

    @property
    def run_requests(self) -> list[dg.RunRequest]:
        return [r.run_request() for r in self.revisits] + [r.run_request() for r in self.requests]

    def summary(self) -> str:
        parts = [
            f"{self.expected} sessions {self.first}..{self.last}",
            f"{self.materialized} published",
            f"{len(self.requests)} requested",
            f"{len(self.revisits)} revisit(s)",
            f"{self.in_progress} in progress",
            f"{self.waiting} waiting for a later tick",
            f"{len(self.held)} held",
        ]
        text = ", ".join(parts)
        if self.held:
            day, reason = min(self.held.items())
            text += f" (e.g. {day}: {reason})"
        return text


def plan_gap_fill(
    instance: dg.DagsterInstance,
    settings: Any,
    *,
    now: dt.datetime,
    batch_size: int = GAP_BATCH_SIZE,
) -> GapFillPlan:
    """The sessions to request now, at most ``batch_size`` in flight: due revisits of sessions
    with vendor holes (at most ``REVISITS_PER_TICK``), then gaps, highest priority first."""
    first = max(settings.processing.start_date, SESSIONS.start.date())
    last = last_due_session(now)
    expected = calendar.sessions_between(first, last)
    materialized = instance.get_materialized_partitions(PARQUET)
    corrupt = corrupt_sessions(instance)
    candidates = {day for day in expected if session_key(day) not in materialized}
    candidates |= corrupt.intersection(expected)
    published = published_sessions(
        OutputLayout.of(settings.storage.output_dir).root, start=first, end=last
    )
    holed = {
        day: summary
        for day, summary in published.items()
        if summary.holes and summary.status == "complete" and day not in corrupt
    }
    for day in candidates:
        holed.pop(day, None)  # not materialized in this instance: a gap first
    plan = GapFillPlan(
        first=first,
        last=last,
        expected=len(expected),
        materialized=sum(1 for day in expected if session_key(day) in materialized),
    )
    if not candidates and not holed:
        return plan
    records = session_records(
        sorted(candidates | set(holed)),
        published_facts(holed),
        run_facts(instance, sessions=candidates | set(holed)),
        corrupt=corrupt & candidates,
    )
    plan.in_progress = sum(1 for r in records.values() if r.state is SessionState.IN_PROGRESS)
    slots = max(0, batch_size - plan.in_progress)
    _plan_revisits(plan, [records[day] for day in holed], holed, now=now, slots=slots)
    slots -= len(plan.revisits)
    gap_records = {day: records[day] for day in sorted(candidates)}
    gaps = find_gaps(gap_records, today=now.date(), min_quality=float(settings.quality.min_score))
    for gap in gaps:
        if gap.kind not in REQUESTED_KINDS:
            continue
        record = records[gap.session]
        decision = decide_retry(record, max_attempts=int(settings.retry.max_attempts), force=False)
        if not decision.allowed:
            plan.held[gap.session] = decision.reason
        elif len(plan.requests) < slots:
            plan.requests.append(
                GapRequest(gap.session, gap.kind, record.attempts + 1, gap.priority)
            )
        else:
            plan.waiting += 1
    return plan


def _plan_revisits(
    plan: GapFillPlan,
    holed: list[SessionRecord],
    summaries: dict,
    *,
    now: dt.datetime,
    slots: int,
) -> None:
    """Add the due revisits, newest session first, and when the next one falls due."""
    for record in sorted(holed, key=lambda r: r.session, reverse=True):
        if record.state is not SessionState.COMPLETE:
            continue  # in flight (counted already), or corrupt: not now
        first = revisits.parse_time(summaries[record.session].first_published_at)
        if first is None:
            continue
        after_days = revisits.due_revisit(first, record.revisits_done, now)
        if after_days is None:
            due = revisits.next_revisit_at(first, record.revisits_done)
            if due is not None and (plan.next_revisit_due is None or due < plan.next_revisit_due):
                plan.next_revisit_due = due
        elif len(plan.revisits) < min(REVISITS_PER_TICK, slots):
            plan.revisits.append(RevisitRequest(record.session, after_days, record.holes))
        else:
            plan.waiting += 1


@dataclass(frozen=True)
class GapCursor:
    """What the last evaluation saw; an unchanged instance after an idle tick is not re-read."""

    events: int
    runs: int
    last: str
    settings: str
    idle: bool
    summary: str = ""
    revisit_due: str = ""  # ISO time the earliest revisit not due yet falls due ("" for none)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> GapCursor | None:
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None  # a cursor of another version: evaluate from scratch

    def same_world(self, other: GapCursor) -> bool:
        return (self.events, self.runs, self.last, self.settings) == (
            other.events,
            other.runs,
            other.last,
            other.settings,
        )

    def revisit_due_by(self, now: dt.datetime) -> bool:
        """Whether a revisit this evaluation saw as not due yet is due at ``now``."""
        due = revisits.parse_time(self.revisit_due)
        return due is not None and now >= due


def _settings_fingerprint(settings: Any) -> str:
    relevant = (
        settings.processing.start_date,
        settings.retry.max_attempts,
        settings.quality.min_score,
        str(settings.storage.output_dir),
    )
    return hashlib.sha256(repr(relevant).encode()).hexdigest()[:16]


def _active_backfill(instance: dg.DagsterInstance) -> str | None:
    backfills = instance.get_backfills(
        filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED]), limit=1
    )
    return backfills[0].backfill_id if backfills else None


@dg.sensor(
    name=GAP_SENSOR_NAME,
    job=session_job,
    minimum_interval_seconds=GAP_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Requests a run per missing, failed or corrupt session (highest priority first, at most "
        f"{GAP_BATCH_SIZE} in flight), stopping at retry.max_attempts failures per session, and "
        "revisits sessions published with vendor holes 1 and 7 days after their first publish. "
        "Stopped by default: start it to keep the history complete without a manual fill-gaps."
    ),
)
def gap_fill_sensor(context: dg.SensorEvaluationContext, spx_settings: SpxSettingsResource):
    """Request the highest-priority gaps; skip cheaply when nothing changed since an idle tick."""
    try:
        settings = spx_settings.load()
    except Exception as error:  # the message of ConfigError says what to fix
        return dg.SkipReason(f"cannot read the spx-data settings: {error}")
    backfill = _active_backfill(context.instance)
    if backfill is not None:
        return dg.SkipReason(f"backfill {backfill} is running; gaps are filled after it ends")
    now = calendar.now_et()
    seen = GapCursor(
        events=context.instance.event_log_storage.get_maximum_record_id() or 0,
        runs=context.instance.get_runs_count(),
        last=last_due_session(now).isoformat(),
        settings=_settings_fingerprint(settings),
        idle=True,
    )
    previous = GapCursor.from_json(context.cursor)
    if (
        previous is not None
        and previous.idle
        and previous.same_world(seen)
        and not previous.revisit_due_by(now)
    ):
        return dg.SkipReason(f"nothing changed since the last tick: {previous.summary}")
    plan = plan_gap_fill(context.instance, settings, now=now)
    summary = plan.summary()
    requests = plan.run_requests
    due = plan.next_revisit_due.isoformat() if plan.next_revisit_due else ""
    cursor = GapCursor(
        **{**seen.__dict__, "idle": not requests, "summary": summary, "revisit_due": due}
    )
    context.log.info(summary)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor.to_json())
    return dg.SensorResult(run_requests=requests, cursor=cursor.to_json())


# ---------------------------------------------------------------------------------------------
# Failure categories
# ---------------------------------------------------------------------------------------------
# Run status sensors handle at most 5 runs per tick: tick often so a burst of failures (a
# backfill while the terminal is down) is categorised within minutes.
FAILURE_SENSOR_INTERVAL_S = 10
_CATEGORY_EVENTS = {
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ENGINE_EVENT,
    DagsterEventType.RUN_FAILURE,
}


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_TAG_CHARS else text[: MESSAGE_TAG_CHARS - 1] + "…"


def _messages(records, event_type: DagsterEventType) -> list[str]:
    out = []
    for record in records:
        if record.dagster_event_type == event_type:
            text = (record.dagster_event and record.dagster_event.message) or record.user_message
            if text:
                out.append(text)
    return out


def categorize_run_failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[str, str]:
    """``(category, message)`` for a failed or canceled run that recorded no category itself.

    A step error outside the assets' own handling (a blocking check, a resource) is ``corrupt``
    when the checksum check failed, else ``unknown``; a run without a failed step died outside
    a step (killed worker, lost process): ``crash``. A canceled run (a pause, a stop) is
    ``canceled``: not a failure.
    """
    if run.status == dg.DagsterRunStatus.CANCELED:
        return FailureCategory.CANCELED.value, "the run was paused or canceled before it finished"
    records = instance.all_logs(run.run_id, of_type=_CATEGORY_EVENTS)
    step_failures = [r for r in records if r.dagster_event_type == DagsterEventType.STEP_FAILURE]
    if step_failures:
        event = step_failures[-1].dagster_event
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:
            error = error.cause  # Dagster wraps the step's own exception; its cause says why
        text = f"{error.cls_name}: {error.message}" if error is not None else event.message or ""
        corrupt = CHECKSUM_CHECK.name in text
        category = FailureCategory.CORRUPT if corrupt else FailureCategory.UNKNOWN
        return category.value, _clip(f"{event.step_key}: {text}")
    engine = _messages(records, DagsterEventType.ENGINE_EVENT)
    failure = _messages(records, DagsterEventType.RUN_FAILURE)
    text = (engine[-1:] or failure[-1:] or ["the run failed outside any step"])[0]
    return "crash", _clip(text)


def record_failure_category(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Tag ``run`` with a category unless it has one; return the category it was given."""
    if run.tags.get(ERROR_CATEGORY_TAG):
        return None
    category, message = categorize_run_failure(instance, run)
    instance.add_run_tags(run.run_id, {ERROR_CATEGORY_TAG: category, ERROR_MESSAGE_TAG: message})
    return category


@dg.run_failure_sensor(
    name="spx_failure_category",
    monitor_all_code_locations=True,
    minimum_interval_seconds=FAILURE_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Tags failed runs that carry no failure category (a killed run worker: crash) so that "
        "spx-data errors, gaps and retry see every failure."
    ),
)
def failure_category_sensor(context: dg.RunFailureSensorContext):
    category = record_failure_category(context.instance, context.dagster_run)
    if category is not None:
        context.log.info(f"run {context.dagster_run.run_id} failed: recorded as {category}")


@dg.run_status_sensor(
    name="spx_canceled_category",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitor_all_code_locations=True,
    minimum_interval_seconds=FAILURE_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Tags canceled runs as canceled (a pause or a stop is not a failure).",
)
def canceled_category_sensor(context: dg.RunStatusSensorContext):
    category = record_failure_category(context.instance, context.dagster_run)
    if category is not None:
        context.log.info(f"run {context.dagster_run.run_id} canceled: recorded as {category}")
