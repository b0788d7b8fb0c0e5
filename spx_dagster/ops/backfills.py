"""Backfills started from the CLI, and whether a daemon will run them.

``backfill``, ``fill-gaps`` and ``retry --backfill`` submit Dagster asset backfills over the
session partitions through the instance (what the web UI's "Materialize" → backfill does); the
daemon (``spx-data serve``) launches their runs. ``pause`` cancels what waits or runs;
``resume`` submits what is left as a new backfill (Dagster cannot restart a canceled one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from spx_dagster.core.cpu_clock import read_cpu, reading_to_json
from spx_dagster.defs.constants import (
    BACKFILL_RUNS_TAG_PREFIX,
    BACKFILL_TAG,
    CPU_AT_SUBMIT_TAG,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    PARQUET,
    PARTITION_TAG,
    SESSION_ASSETS,
)
from spx_dagster.defs.dagster_internals import (
    BULK_ACTION_TERMINAL_STATUSES,
    PARENT_BACKFILL_ID_TAG,
    ROOT_BACKFILL_ID_TAG,
    BulkActionStatus,
    PartitionBackfill,
    get_daemon_statuses,
    make_new_backfill_id,
)
from spx_dagster.defs.instance_queries import backfill_sessions
from spx_dagster.defs.partitions import session_from_key, session_key
from spx_dagster.ops.runs import load_definitions

# Dagster's run-level priority tag: the queued run coordinator launches higher values first.
PRIORITY_TAG = "dagster/priority"
# `backfill --concurrency N` (N below the instance's per-backfill limit) tags its runs with
# `spx/backfill_runs_<N>: <backfill id>`; dagster.yaml limits each such key to N runs per value.
RESUMED_FROM_TAG = "spx/resumed_from"


def daemon_running(instance: dg.DagsterInstance, *, tolerance_s: float = 60.0) -> bool:
    """Whether a dagster-daemon with a live backfill daemon heartbeats on this instance."""
    try:
        statuses = get_daemon_statuses(
            instance, ["BACKFILL"], heartbeat_tolerance_seconds=tolerance_s
        )
    except Exception:
        return False
    status = statuses.get("BACKFILL")
    return bool(status and status.healthy)


def backfill_runs_limit(instance: dg.DagsterInstance) -> int | None:
    """The instance's limit on runs of one backfill (``dagster/backfill`` per unique value)."""
    for rule in _tag_rules(instance):
        if rule.get("key") == BACKFILL_TAG and isinstance(rule.get("value"), Mapping):
            return int(rule["limit"])
    return None


def _tag_rules(instance: dg.DagsterInstance) -> list[Mapping]:
    try:
        config = instance.get_concurrency_config().run_queue_config
    except Exception:
        return []
    return list(getattr(config, "tag_concurrency_limits", None) or [])


def concurrency_tag(instance: dg.DagsterInstance, concurrency: int) -> tuple[str | None, str]:
    """The tag key enforcing ``--concurrency N`` on this instance, and a note for the user.

    Returns ``(key, note)``; ``key`` is None when no tag is needed or none is configured.
    """
    limit = backfill_runs_limit(instance)
    if limit is not None and concurrency >= limit:
        note = (
            f"--concurrency {concurrency}: this instance runs at most {limit} runs of one "
            f"backfill at once (dagster.yaml, tag dagster/backfill)"
        )
        return None, note if concurrency > limit else ""
    key = f"{BACKFILL_RUNS_TAG_PREFIX}{concurrency}"
    if any(r.get("key") == key for r in _tag_rules(instance)):
        return key, ""
    return None, (
        f"--concurrency {concurrency} has no effect on this instance: its dagster.yaml has no "
        f"rule for the tag {key}; the backfill runs as many runs at once as dagster/backfill "
        "allows. To enable it, add under concurrency.runs.tag_concurrency_limits: "
        f"{{key: {key}, limit: {concurrency}, value: {{applyLimitPerUniqueValue: true}}}}"
    )


def submit_backfill(
    instance: dg.DagsterInstance,
    sessions: Sequence[dt.date],
    *,
    tags: Mapping[str, str],
    title: str,
    description: str | None = None,
    concurrency: int | None = None,
    priority: int | None = None,
) -> str:
    """Submit an asset backfill of the session assets over ``sessions``; return its id."""
    if not sessions:
        raise ValueError("a backfill needs at least one session")
    backfill_id = make_new_backfill_id()
    all_tags = dict(tags)
    if concurrency is not None:
        key, _ = concurrency_tag(instance, concurrency)
        if key is not None:
            all_tags[key] = backfill_id
    if priority is not None:
        all_tags[PRIORITY_TAG] = str(priority)
    submitted = reading_to_json(read_cpu())
    if submitted is not None:
        all_tags[CPU_AT_SUBMIT_TAG] = json.dumps(submitted)
    graph = load_definitions().resolve_asset_graph()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=graph,
        partition_names=[session_key(day) for day in sorted(set(sessions))],
        asset_selection=list(SESSION_ASSETS),
        backfill_timestamp=time.time(),
        tags=all_tags,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title,
        description=description,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill_id


def get_backfill(instance: dg.DagsterInstance, backfill_id: str) -> PartitionBackfill | None:
    return instance.get_backfill(backfill_id)


@dataclass
class BackfillProgress:
    """Where a backfill is, from its runs: per session, the status of the latest run."""

    backfill_id: str
    status: str
    total: int
    done: list[dt.date]
    failed: list[dt.date]
    running: list[dt.date]
    queued: list[dt.date]
    not_started: list[dt.date]
    started_at: float
    ended_at: float | None = None  # when the backfill reached a final status
    canceled: list[dt.date] = field(default_factory=list)  # paused or canceled: not failed
    failures: dict[str, dict] = field(default_factory=dict)  # session -> category/message/run
    run_ids: dict[str, str] = field(default_factory=dict)  # session -> latest run id
    title: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in {s.value for s in BULK_ACTION_TERMINAL_STATUSES}

    @property
    def elapsed_s(self) -> float:
        """Seconds since the backfill started, stopped at its end once it has ended."""
        end = self.ended_at if self.finished and self.ended_at else time.time()
        return max(end - self.started_at, 0.0)

    @property
    def eta_s(self) -> float | None:
        settled = len(self.done) + len(self.failed)
        remaining = self.total - settled
        if not settled or remaining <= 0 or self.finished:
            return None
        return self.elapsed_s / settled * remaining

    def to_dict(self) -> dict:
        return {
            "backfill_id": self.backfill_id,
            "title": self.title,
            "status": self.status,
            "finished": self.finished,
            "total": self.total,
            "done": len(self.done),
            "failed": len(self.failed),
            "running": len(self.running),
            "queued": len(self.queued),
            "not_started": len(self.not_started),
            "canceled": len(self.canceled),
            "elapsed_s": round(self.elapsed_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "sessions": {
                "done": [d.isoformat() for d in self.done],
                "failed": [d.isoformat() for d in self.failed],
                "running": [d.isoformat() for d in self.running],
                "queued": [d.isoformat() for d in self.queued],
                "not_started": [d.isoformat() for d in self.not_started],
                "canceled": [d.isoformat() for d in self.canceled],
            },
            "failures": self.failures,
            "run_ids": self.run_ids,
            "tags": self.tags,
        }


_QUEUED = {"QUEUED", "NOT_STARTED", "STARTING"}
_RUNNING = {"STARTED", "CANCELING"}


def backfill_progress(instance: dg.DagsterInstance, backfill_id: str) -> BackfillProgress:
    """Sessions done / failed / running / queued / not started of one backfill."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise KeyError(backfill_id)
    sessions = backfill_sessions(backfill)
    latest: dict[dt.date, dg.DagsterRun] = {}
    records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
    for record in sorted(records, key=lambda r: r.create_timestamp.timestamp()):
        key = record.dagster_run.tags.get(PARTITION_TAG)
        if key:
            latest[session_from_key(key)] = record.dagster_run
    progress = BackfillProgress(
        backfill_id=backfill_id,
        status=backfill.status.value,
        total=len(sessions),
        done=[],
        failed=[],
        running=[],
        queued=[],
        not_started=[],
        started_at=backfill.backfill_timestamp,
        ended_at=backfill.backfill_end_timestamp
        or max((r.end_time for r in records if r.end_time), default=None),
        title=backfill.title,
        tags=dict(backfill.tags),
    )
    for day in sessions:
        run = latest.get(day)
        if run is None:
            progress.not_started.append(day)
            continue
        progress.run_ids[day.isoformat()] = run.run_id
        status = run.status.value
        if status == "SUCCESS":
            progress.done.append(day)
        elif status == "CANCELED":
            progress.canceled.append(day)
        elif status == "FAILURE":
            progress.failed.append(day)
            progress.failures[day.isoformat()] = {
                "run_id": run.run_id,
                "status": status,
                "error_category": run.tags.get(ERROR_CATEGORY_TAG) or "unknown",
                "error_message": run.tags.get(ERROR_MESSAGE_TAG),
            }
        elif status in _RUNNING:
            progress.running.append(day)
        else:
            progress.queued.append(day)
    return progress


def list_backfills(instance: dg.DagsterInstance, *, limit: int = 20) -> list[PartitionBackfill]:
    """The newest backfills of this instance, newest first."""
    return list(instance.get_backfills(limit=limit))


def pause_backfill(instance: dg.DagsterInstance, backfill_id: str) -> PartitionBackfill:
    """Cancel a backfill (what the UI's "Cancel backfill" does): the daemon cancels its queued
    and running runs and marks it CANCELED; sessions already published stay published."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise KeyError(backfill_id)
    if backfill.status in BULK_ACTION_TERMINAL_STATUSES:
        return backfill
    updated = backfill.with_status(BulkActionStatus.CANCELING)
    instance.update_backfill(updated)
    # Queued runs have no worker yet: cancel them here so nothing new starts even when the
    # daemon is slow to notice; running ones are terminated by the daemon.
    queued = instance.get_run_records(
        dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}, statuses=[dg.DagsterRunStatus.QUEUED])
    )
    for record in queued:
        with contextlib.suppress(Exception):
            instance.report_run_canceled(record.dagster_run, message="backfill paused")
    return updated


def resume_backfill(instance: dg.DagsterInstance, backfill_id: str) -> tuple[str, list[dt.date]]:
    """A new backfill of the sessions the paused (or finished) one has not published.

    Dagster cannot restart a canceled asset backfill; like the UI's "re-execute from failure",
    the remaining sessions become a new backfill that carries the original's tags and
    ``dagster/parent_backfill_id``. Returns the new id and its sessions.
    """
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise KeyError(backfill_id)
    progress = backfill_progress(instance, backfill_id)
    if (
        backfill.status == BulkActionStatus.CANCELING
        and not progress.running
        and not progress.queued
    ):
        # Paused while no daemon ran: nothing is left to cancel, so finish what it would do.
        backfill = backfill.with_status(BulkActionStatus.CANCELED)
        instance.update_backfill(backfill)
    if backfill.status not in BULK_ACTION_TERMINAL_STATUSES:
        raise RuntimeError(
            f"backfill {backfill_id} is still {backfill.status.value.lower()}: pause it first "
            f"(spx-data backfill pause {backfill_id}) or wait for it to finish"
        )
    materialized = {session_from_key(k) for k in instance.get_materialized_partitions(PARQUET) if k}
    remaining = [
        day
        for day in backfill_sessions(backfill)
        if day not in materialized and day not in progress.done
    ]
    if not remaining:
        return "", []
    tags = {
        k: v
        for k, v in backfill.tags.items()
        if not k.startswith(BACKFILL_RUNS_TAG_PREFIX) and not k.startswith("dagster/")
    }
    tags[PARENT_BACKFILL_ID_TAG] = backfill_id
    tags[ROOT_BACKFILL_ID_TAG] = backfill.tags.get(ROOT_BACKFILL_ID_TAG, backfill_id)
    tags[RESUMED_FROM_TAG] = backfill_id
    if PRIORITY_TAG in backfill.tags:
        tags[PRIORITY_TAG] = backfill.tags[PRIORITY_TAG]
    concurrency = next(
        (
            int(k.removeprefix(BACKFILL_RUNS_TAG_PREFIX))
            for k in backfill.tags
            if k.startswith(BACKFILL_RUNS_TAG_PREFIX)
        ),
        None,
    )
    new_id = submit_backfill(
        instance,
        remaining,
        tags=tags,
        title=f"resume of {backfill.title or backfill_id}",
        description=f"the sessions backfill {backfill_id} had not published",
        concurrency=concurrency,
    )
    return new_id, remaining
