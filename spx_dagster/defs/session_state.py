"""The state of every session in a range: the one place the CLI, fill-gaps and the gap sensor read.

It combines, with set arithmetic and no per-partition query:

- the expected sessions (XNYS calendar, from ``processing.start_date`` to the latest closed one),
- what is published (manifests, ``core.storage.published_sessions``; an unreadable manifest makes
  its session corrupt),
- every run of a session (``instance_queries.run_facts``: one query for partitions and statuses,
  one for the tags of failed runs),
- sessions whose latest ``checksums_match`` result failed (in a run, or from ``spx-data verify``),
  and sessions a listed file of which is gone or has another size than its manifest says (stat),
- sessions a running backfill has still to run (in progress, not failed),

into one ``core.history.SessionRecord`` per session. ``get_status_by_partition`` is never called:
it costs seconds per call with thousands of keys.

It also records what ``spx-data verify`` finds as ``checksums_match`` evaluations, so that a
corrupt file shows in the Dagster UI and in ``gaps``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from spx_dagster.core import calendar
from spx_dagster.core.history import (
    PublishedFact,
    RunFact,
    SessionRecord,
    session_records,
)
from spx_dagster.core.storage import ManifestSummary, published_sessions
from spx_dagster.defs.constants import CHECKSUM_CHECK, PARQUET
from spx_dagster.defs.dagster_internals import (
    AssetCheckEvaluationTargetMaterializationData,
    DagsterEvent,
    DagsterEventType,
    PartitionKeyFilter,
)
from spx_dagster.defs.instance_queries import (
    corrupt_sessions,
    pending_backfill_sessions,
    run_facts,
)
from spx_dagster.defs.partitions import session_key

CORRUPT_MANIFEST = "corrupt"  # ManifestSummary.status of a manifest that cannot be read


@dataclass
class SessionSnapshot:
    """Everything known about the sessions in [start, end], read once."""

    start: dt.date
    end: dt.date
    expected: list[dt.date]
    published: dict[dt.date, ManifestSummary]
    runs: list[RunFact]
    corrupt: set[dt.date]
    records: dict[dt.date, SessionRecord] = field(default_factory=dict)

    @property
    def published_facts(self) -> dict[dt.date, PublishedFact]:
        return published_facts(self.published)

    @property
    def volatility(self) -> dict[dt.date, float]:
        """``extra.underlying_range`` of the manifests that record it (the day's index range)."""
        return {
            day: s.underlying_range
            for day, s in self.published.items()
            if s.underlying_range is not None
        }


def published_facts(summaries: dict[dt.date, ManifestSummary]) -> dict[dt.date, PublishedFact]:
    """``core.history`` facts of manifest summaries (unreadable ones keep status ``corrupt``)."""
    return {
        day: PublishedFact(
            session=day,
            status=s.status,
            rows=s.rows,
            bytes=s.bytes,
            quality=s.quality,
            seconds=s.seconds,
            created_at=s.created_at,
            underlying_range=s.underlying_range,
        )
        for day, s in summaries.items()
    }


def default_range(
    settings: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[dt.date, dt.date]:
    """[start, end] with ``processing.start_date`` and the latest closed session as defaults."""
    first = start or settings.processing.start_date
    last = end or calendar.latest_closed_session(now)
    return first, last


def session_snapshot(
    instance: dg.DagsterInstance,
    settings: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> SessionSnapshot:
    """Read the calendar, the manifests and the instance once for the sessions in [start, end].

    A session outside the expected ones (published before ``processing.start_date`` was moved,
    say) is still listed when it has a manifest or a run in the range.
    """
    first, last = default_range(settings, start, end, now=now)
    expected = calendar.sessions_between(first, last)
    published = published_sessions(Path(settings.storage.output_dir), start=first, end=last)
    runs = [r for r in run_facts(instance) if first <= r.session <= last]
    corrupt = {d for d in corrupt_sessions(instance) if first <= d <= last}
    corrupt |= {d for d, s in published.items() if s.status == CORRUPT_MANIFEST}
    output_dir = Path(settings.storage.output_dir)
    corrupt |= {d for d, s in published.items() if s.size_problems(output_dir)}
    pending = {d for d in pending_backfill_sessions(instance) if first <= d <= last}
    days = sorted(set(expected) | set(published) | {r.session for r in runs} | corrupt)
    snapshot = SessionSnapshot(first, last, expected, published, runs, corrupt)
    snapshot.records = session_records(
        days, published_facts(published), runs, corrupt=corrupt, pending=pending
    )
    return snapshot


def session_state(
    instance: dg.DagsterInstance,
    settings: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[SessionRecord]:
    """One record per session in [start, end] (defaults: ``processing.start_date`` → the latest
    closed session), oldest first."""
    return list(session_snapshot(instance, settings, start, end).records.values())


# ---------------------------------------------------------------------------------------------
# Recording verification results
# ---------------------------------------------------------------------------------------------
def _has_runless_evaluation(instance: dg.DagsterInstance, key: str) -> bool:
    history = instance.event_log_storage.get_asset_check_execution_history(
        CHECKSUM_CHECK, limit=1000, partition_filter=PartitionKeyFilter(key=key)
    )
    return any(not record.run_id for record in history)


def _latest_materialization(instance: dg.DagsterInstance, key: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PARQUET, asset_partitions=[key]), limit=1
    ).records
    return records[0] if records else None


def new_verification_id() -> str:
    """An id shared by the evaluations of one ``spx-data verify`` invocation."""
    return f"spx-verify-{uuid.uuid4().hex[:12]}"


def record_verification(
    instance: dg.DagsterInstance,
    report: Any,
    *,
    verification_id: str | None = None,
) -> dg.AssetCheckEvaluation:
    """Record a ``core.storage.VerifyReport`` as the session's ``checksums_match`` evaluation.

    The evaluation targets the session's latest materialization of ``spx/options_parquet`` when
    there is one, so the UI shows it beside that materialization; ``corrupt_sessions`` then
    reads a failed one as corrupt until a passing check (a re-publish or a clean verify).

    Dagster 1.13 keeps at most one runless evaluation per check and partition (its unique index
    on asset key, check, run id and partition sees every runless event under the same empty run
    id), so only a session's first verification goes through ``report_runless_asset_event``;
    later ones are reported under ``verification_id``, one per ``spx-data verify`` invocation.
    """
    from spx_dagster.defs.assets import checksum_result  # deferred: imports the pipeline

    key = session_key(report.session)
    result = checksum_result(report)
    target = _latest_materialization(instance, key)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=PARQUET,
        check_name=CHECKSUM_CHECK.name,
        passed=result.passed,
        metadata={**result.metadata, "verified_by": "spx-data verify"},
        severity=result.severity,
        description=result.description,
        partition=key,
        target_materialization_data=(
            None
            if target is None
            else _target_data(target.storage_id, target.run_id, target.timestamp)
        ),
    )
    if not _has_runless_evaluation(instance, key):
        instance.report_runless_asset_event(evaluation)
    else:
        instance.report_dagster_event(
            DagsterEvent(
                event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
                event_specific_data=evaluation,
                job_name="",
            ),
            run_id=verification_id or new_verification_id(),
        )
    return evaluation


def _target_data(storage_id: int, run_id: str, timestamp: float):

    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=storage_id, run_id=run_id, timestamp=timestamp
    )
