"""Read Dagster's instance into the plain records of ``core.history``.

Runs come from ``get_run_records`` (every run of a session: attempts are counted from them),
failure categories from the tags of failed runs; corrupt sessions from the latest partitioned
results of the ``checksums_match`` check. Nothing here calls ``get_status_by_partition``: all
per-session work is set arithmetic over partition keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from spx_dagster.core.failure_categories import FailureCategory
from spx_dagster.core.history import RunFact
from spx_dagster.defs.constants import (
    BACKFILL_TAG,
    CHECKSUM_CHECK,
    CPU_AT_SUBMIT_TAG,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    FORCED_TAG,
    PARQUET,
    PARTITION_TAG,
    REVISIT_TAG,
    SESSION_JOB,
)
from spx_dagster.defs.dagster_internals import (
    AssetCheckExecutionRecordStatus,
    BulkActionStatus,
    PartitionBackfill,
)
from spx_dagster.defs.partitions import session_from_key, session_key

_FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _parse_key(key: str | None) -> dt.date | None:
    if not key:
        return None
    try:
        return session_from_key(key)
    except ValueError:
        return None


# Partition keys per tag query: well under SQLite's bound on the variables of one statement.
_KEYS_PER_QUERY = 900


def run_facts(
    instance: dg.DagsterInstance,
    *,
    job_name: str | None = None,
    sessions: Iterable[dt.date] | None = None,
) -> list[RunFact]:
    """Every run of a session, oldest first (of ``job_name``, of ``sessions`` if given).

    Every run, not the latest per partition (``get_run_partition_data`` keeps only the latest
    run of each partition): attempts and the attempt cap are counted from these. ``sessions``
    restricts the query to those sessions' partition tags, which is what the gap sensor uses to
    read only the sessions it may request.
    """
    if sessions is None:
        filters = [dg.RunsFilter(job_name=job_name)]
    else:
        keys = sorted({session_key(day) for day in sessions})
        filters = [
            dg.RunsFilter(job_name=job_name, tags={PARTITION_TAG: keys[i : i + _KEYS_PER_QUERY]})
            for i in range(0, len(keys), _KEYS_PER_QUERY)
        ]
    facts = []
    for runs_filter in filters:
        for record in instance.get_run_records(runs_filter, ascending=True):
            run = record.dagster_run
            day = _parse_key(run.tags.get(PARTITION_TAG))
            if day is None:
                continue
            failed = run.status in _FAILED
            category = run.tags.get(ERROR_CATEGORY_TAG) if failed else None
            if run.status == dg.DagsterRunStatus.CANCELED:
                # A pause or a cancel is not a failure, whatever a step recorded on the way out.
                category = FailureCategory.CANCELED.value
            facts.append(
                RunFact(
                    session=day,
                    run_id=run.run_id,
                    status=run.status.value,
                    start_time=record.start_time,
                    end_time=record.end_time,
                    error_category=category,
                    error_message=run.tags.get(ERROR_MESSAGE_TAG) if failed else None,
                    forced=run.tags.get(FORCED_TAG) == "true",
                    revisit=_revisit_days(run.tags.get(REVISIT_TAG)),
                    backfill_id=run.tags.get(BACKFILL_TAG),
                    cpu_at_submit=run.tags.get(CPU_AT_SUBMIT_TAG),
                )
            )
    return facts


def _revisit_days(tag: str | None) -> int | None:
    return int(tag) if tag and tag.isdigit() else None


def corrupt_sessions(instance: dg.DagsterInstance) -> set[dt.date]:
    """Sessions whose latest checksum check (in a run or from ``spx-data verify``) failed."""
    out: set[dt.date] = set()
    infos = instance.event_log_storage.get_asset_check_partition_info([CHECKSUM_CHECK])
    for info in infos:
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED:
            day = _parse_key(info.partition_key)
            if day is not None:
                out.add(day)
    return out


def session_job_names() -> Iterable[str]:
    return (SESSION_JOB,)


def backfill_sessions(backfill: PartitionBackfill) -> list[dt.date]:
    """The sessions a backfill targets (its partition keys of ``spx/options_parquet``)."""
    if not backfill.is_asset_backfill:
        return sorted(session_from_key(k) for k in backfill.partition_names or ())
    data = backfill.asset_backfill_data
    if data is None:
        from spx_dagster.definitions import defs  # deferred: loads the code location

        data = backfill.get_asset_backfill_data(defs.resolve_asset_graph())
    keys = {
        apk.partition_key
        for apk in data.target_subset.iterate_asset_partitions()
        if apk.asset_key == PARQUET
    }
    return sorted(session_from_key(k) for k in keys if k)


def active_backfill_sessions(instance: dg.DagsterInstance) -> dict[dt.date, str]:
    """Sessions targeted by backfills that have not ended, with the backfill's id."""
    out: dict[dt.date, str] = {}
    for status in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
        for backfill in instance.get_backfills(status=status):
            for day in backfill_sessions(backfill):
                out.setdefault(day, backfill.backfill_id)
    return out


def pending_backfill_sessions(instance: dg.DagsterInstance) -> dict[dt.date, str]:
    """Sessions a running backfill will still run (no run of theirs in it has ended yet), with
    the backfill's id: to a reader they are in progress, not failed or missing."""
    out: dict[dt.date, str] = {}
    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED):
        ended = {
            _parse_key(record.dagster_run.tags.get(PARTITION_TAG))
            for record in instance.get_run_records(
                dg.RunsFilter(tags={BACKFILL_TAG: backfill.backfill_id})
            )
            if record.dagster_run.is_finished
        }
        for day in backfill_sessions(backfill):
            if day not in ended:
                out.setdefault(day, backfill.backfill_id)
    return out
