"""Read Dagster's instance into the plain records of ``core.history``.

Runs and their partitions come from ``get_run_partition_data`` (one query, no run bodies);
failure categories from the tags of failed runs; corrupt sessions from the latest partitioned
results of the ``checksums_match`` check. Nothing here calls ``get_status_by_partition``: all
per-session work is set arithmetic over partition keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from spx_dagster.core.history import RunFact
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    FORCED_TAG,
    SESSION_JOB,
)
from spx_dagster.defs.partitions import session_from_key

_FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _parse_key(key: str | None) -> dt.date | None:
    if not key:
        return None
    try:
        return session_from_key(key)
    except ValueError:
        return None


def run_facts(instance: dg.DagsterInstance, *, job_name: str | None = None) -> list[RunFact]:
    """Every run of a session (any job materializing the session assets, or ``job_name``)."""
    runs_filter = dg.RunsFilter(job_name=job_name) if job_name else dg.RunsFilter()
    partition_data = instance.get_run_partition_data(runs_filter)
    failed_tags: dict[str, dict[str, str]] = {}
    for record in instance.get_run_records(
        dg.RunsFilter(statuses=_FAILED, job_name=job_name)
        if job_name
        else dg.RunsFilter(statuses=_FAILED)
    ):
        failed_tags[record.dagster_run.run_id] = dict(record.dagster_run.tags)
    forced_ids = {
        r.dagster_run.run_id
        for r in instance.get_run_records(dg.RunsFilter(tags={FORCED_TAG: "true"}))
    }
    facts = []
    for data in partition_data:
        day = _parse_key(data.partition)
        if day is None:
            continue
        tags = failed_tags.get(data.run_id, {})
        facts.append(
            RunFact(
                session=day,
                run_id=data.run_id,
                status=data.status.value,
                start_time=data.start_time,
                end_time=data.end_time,
                error_category=tags.get(ERROR_CATEGORY_TAG),
                error_message=tags.get(ERROR_MESSAGE_TAG),
                forced=data.run_id in forced_ids,
            )
        )
    return facts


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
