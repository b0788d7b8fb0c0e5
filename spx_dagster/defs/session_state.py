"""The state of every session in a range, read through Dagster's instance; and the results of
``spx-data verify`` recorded as ``checksums_match`` evaluations, so that a corrupt file shows in
the Dagster UI and in ``gaps``.

The combining lives in ``core.snapshot`` (no Dagster import): this module gives it the facts of
``instance_queries`` (runs, corrupt sessions, a running backfill's pending sessions), which never
call ``get_status_by_partition`` (it costs seconds per call with thousands of keys).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import dagster as dg

from spx_dagster.core.history import RunFact, SessionRecord
from spx_dagster.core.snapshot import (  # noqa: F401 (re-exported: the readers' one definition)
    CORRUPT_MANIFEST,
    SessionSnapshot,
    build_snapshot,
    default_range,
    published_facts,
)
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


class DagsterFacts:
    """``core.snapshot.InstanceFacts`` read through Dagster's API."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def run_facts(self) -> list[RunFact]:
        return run_facts(self.instance)

    def corrupt_sessions(self) -> set[dt.date]:
        return corrupt_sessions(self.instance)

    def pending_backfill_sessions(self) -> dict[dt.date, str]:
        return pending_backfill_sessions(self.instance)


def session_snapshot(
    instance: dg.DagsterInstance,
    settings: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> SessionSnapshot:
    """``core.snapshot.build_snapshot`` over the instance's facts."""
    return build_snapshot(DagsterFacts(instance), settings, start, end, now=now)


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
