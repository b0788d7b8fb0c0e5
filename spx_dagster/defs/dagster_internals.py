"""Every name spx-data takes from Dagster's private modules (``dagster._*``), in one place.

Dagster 1.13 has no public API for these; each is pinned by ``dagster==1.13.*`` and named here
with the reason it is needed, so that an upgrade has one file to check. Everything else uses
``import dagster as dg``.
"""

from __future__ import annotations

from typing import Any

# A verification recorded against the session's latest materialization, so the UI shows both
# together.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

# Event types read from run logs (failure categories, run history) and the event that records
# a later `spx-data verify` as a check evaluation.
from dagster._core.events import DagsterEvent, DagsterEventType

# Asset backfills: submitting one from the CLI as the UI does (PartitionBackfill), reading and
# changing its status (pause, resume, progress), and filtering the instance's backfills.
from dagster._core.execution.backfill import (
    BULK_ACTION_TERMINAL_STATUSES,
    BulkActionsFilter,
    BulkActionStatus,
    PartitionBackfill,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

# Reading one partition's check history (`checksums_match`) and its latest status.
from dagster._core.storage.event_log.base import PartitionKeyFilter

# The tags that link a resumed backfill to the one it resumes (the UI's "re-execute" does so).
from dagster._core.storage.tags import PARENT_BACKFILL_ID_TAG, ROOT_BACKFILL_ID_TAG

# The run id of a session run started in process, and the id of a submitted backfill, made the
# way Dagster makes its own.
from dagster._core.utils import make_new_backfill_id, make_new_run_id


def get_daemon_statuses(instance: Any, daemon_types: list[str], **kwargs: Any) -> dict:
    """The daemons' heartbeats (is a backfill daemon running?). Imported when called: the
    daemon controller module is heavy and only `backfill`, `serve` and `status` ask."""
    from dagster._daemon.controller import get_daemon_statuses as statuses

    return statuses(instance, daemon_types, **kwargs)


__all__ = [
    "BULK_ACTION_TERMINAL_STATUSES",
    "PARENT_BACKFILL_ID_TAG",
    "ROOT_BACKFILL_ID_TAG",
    "AssetCheckEvaluationTargetMaterializationData",
    "AssetCheckExecutionRecordStatus",
    "BulkActionStatus",
    "BulkActionsFilter",
    "DagsterEvent",
    "DagsterEventType",
    "PartitionBackfill",
    "PartitionKeyFilter",
    "get_daemon_statuses",
    "make_new_backfill_id",
    "make_new_run_id",
]
