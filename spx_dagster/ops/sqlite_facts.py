"""Run facts of spx-data's default SQLite Dagster instance, read with ``sqlite3``: no Dagster
import, so ``gaps`` and ``list`` answer in well under a second at full history.

Importing Dagster costs about a second before any work; ``gaps`` and ``list`` need only the runs
of each session (status, times, a few tags) and the latest ``checksums_match`` result of each
partition, which are plain rows of the instance's ``history/runs.db`` and
``history/runs/index.db``. ``open_sqlite_facts`` gives a reader of them only where the answer is
the one Dagster's API would give (``defs.instance_queries``, held equal by a test):

- ``dagster.yaml`` configures no storage of its own (the SQLite default under DAGSTER_HOME;
  Postgres and other storages go through Dagster),
- both databases exist with the tables and columns read here,
- no run is in progress and no backfill is requested or canceling: then a CLI process's dead
  runs must be reaped (``defs.dead_runs``) and a backfill's pending sessions resolved, which
  need Dagster. Whatever is live falls back to the Dagster path.

Otherwise it returns None and the caller opens the instance as before. Read-only connections
(``mode=ro``) never write to the instance nor create it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path

from spx_dagster.core.history import RunFact

# Dagster's names, as ``defs.constants`` and ``defs.partitions`` spell them (a test holds the
# two equal): they are the rows' keys here.
PARTITION_TAG = "dagster/partition"
ERROR_CATEGORY_TAG = "spx/error_category"
ERROR_MESSAGE_TAG = "spx/error_message"
FORCED_TAG = "spx/forced"
REVISIT_TAG = "spx/revisit"
CPU_AT_SUBMIT_TAG = "spx/cpu_at_submit"
BACKFILL_TAG = "dagster/backfill"
PARTITION_FORMAT = "%Y-%m-%d"
CHECKSUM_ASSET_PATH = ["spx", "options_parquet"]
CHECKSUM_CHECK_NAME = "checksums_match"
CANCELED_CATEGORY = "canceled"  # core.failure_categories.FailureCategory.CANCELED

IN_PROGRESS_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
LIVE_BACKFILL_STATUSES = ("REQUESTED", "CANCELING")
FAILED_STATUSES = ("FAILURE", "CANCELED")
STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")
_TAGS = (
    PARTITION_TAG,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    FORCED_TAG,
    REVISIT_TAG,
    BACKFILL_TAG,
    CPU_AT_SUBMIT_TAG,
)
_NEEDED = {
    "runs.db": {
        "runs": {
            "id",
            "run_id",
            "pipeline_name",
            "status",
            "start_time",
            "end_time",
            "update_timestamp",
        },
        "run_tags": {"run_id", "key", "value"},
        "bulk_actions": {"status"},
        "daemon_heartbeats": {"daemon_type", "body"},  # for ops.status_facts
    },
    "runs/index.db": {
        "asset_check_executions": {
            "id",
            "asset_key",
            "check_name",
            "partition",
            "execution_status",
            "evaluation_event_storage_id",
        }
    },
}


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)


def _has_columns(connection: sqlite3.Connection, tables: dict[str, set[str]]) -> bool:
    for table, columns in tables.items():
        found = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if not columns <= found:
            return False
    return True


def _own_storage(dagster_home: Path) -> bool:
    """Whether ``dagster.yaml`` configures a storage (then only Dagster knows where runs are)."""
    try:
        text = (dagster_home / "dagster.yaml").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return any(
        line.split(":", 1)[0].strip() in STORAGE_KEYS
        for line in text.splitlines()
        if line[:1].isalpha()
    )


def _session(key: str | None) -> dt.date | None:
    if not key:
        return None
    try:
        return dt.datetime.strptime(key, PARTITION_FORMAT).date()
    except ValueError:
        return None


def _revisit(tag: str | None) -> int | None:
    return int(tag) if tag and tag.isdigit() else None


class SqliteFacts:
    """Read-only access to the runs and check results of a quiet SQLite instance."""

    def __init__(self, runs: sqlite3.Connection, index: sqlite3.Connection) -> None:
        self.runs_db, self._index = runs, index

    def close(self) -> None:
        self.runs_db.close()
        self._index.close()

    def quiet(self) -> bool:
        """No run in progress and no live backfill (see the module docstring)."""
        marks = ",".join("?" * len(IN_PROGRESS_STATUSES))
        live = self.runs_db.execute(
            f"SELECT 1 FROM runs WHERE status IN ({marks}) LIMIT 1", IN_PROGRESS_STATUSES
        ).fetchone()
        if live:
            return False
        marks = ",".join("?" * len(LIVE_BACKFILL_STATUSES))
        backfill = self.runs_db.execute(
            f"SELECT 1 FROM bulk_actions WHERE status IN ({marks}) LIMIT 1",
            LIVE_BACKFILL_STATUSES,
        ).fetchone()
        return not backfill

    def run_facts(self) -> list[RunFact]:
        """Every run of a session, oldest first: ``instance_queries.run_facts`` in one query."""
        marks = ",".join("?" * len(_TAGS))
        rows = self.runs_db.execute(
            "SELECT r.id, r.run_id, r.status, r.start_time, r.end_time, t.key, t.value "
            "FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
            f"WHERE t.key IN ({marks}) ORDER BY r.id",
            _TAGS,
        ).fetchall()
        runs: dict[int, tuple[str, str, float | None, float | None, dict[str, str]]] = {}
        for row_id, run_id, status, start, end, key, value in rows:
            runs.setdefault(row_id, (run_id, status, start, end, {}))[4][key] = value
        facts = []
        for run_id, status, start, end, tags in runs.values():
            day = _session(tags.get(PARTITION_TAG))
            if day is None:
                continue
            failed = status in FAILED_STATUSES
            category = tags.get(ERROR_CATEGORY_TAG) if failed else None
            if status == "CANCELED":
                category = CANCELED_CATEGORY
            facts.append(
                RunFact(
                    session=day,
                    run_id=run_id,
                    status=status,
                    start_time=start,
                    end_time=end,
                    error_category=category,
                    error_message=tags.get(ERROR_MESSAGE_TAG) if failed else None,
                    forced=tags.get(FORCED_TAG) == "true",
                    revisit=_revisit(tags.get(REVISIT_TAG)),
                    backfill_id=tags.get(BACKFILL_TAG),
                    cpu_at_submit=tags.get(CPU_AT_SUBMIT_TAG),
                )
            )
        return facts

    def corrupt_sessions(self) -> set[dt.date]:
        """Sessions whose latest ``checksums_match`` evaluation failed
        (``instance_queries.corrupt_sessions``: the newest row per partition with an
        evaluation)."""
        rows = self._index.execute(
            "SELECT e.partition, e.execution_status FROM asset_check_executions e JOIN ("
            " SELECT max(id) AS id FROM asset_check_executions"
            " WHERE asset_key = ? AND check_name = ? AND evaluation_event_storage_id IS NOT NULL"
            " GROUP BY partition) latest ON latest.id = e.id",
            (json.dumps(CHECKSUM_ASSET_PATH), CHECKSUM_CHECK_NAME),
        ).fetchall()
        return {
            day
            for partition, status in rows
            if status == "FAILED" and (day := _session(partition)) is not None
        }

    def pending_backfill_sessions(self) -> dict[dt.date, str]:
        return {}  # quiet: no backfill is running


def open_sqlite_facts(dagster_home: Path) -> SqliteFacts | None:
    """A reader of a quiet default SQLite instance at ``dagster_home``, or None (use Dagster)."""
    history = dagster_home / "history"
    paths = {name: history / name for name in _NEEDED}
    if _own_storage(dagster_home) or not all(p.is_file() for p in paths.values()):
        return None
    connections = {}
    with contextlib.suppress(sqlite3.Error, LookupError):
        for name, path in paths.items():
            connections[name] = _connect(path)
            if not _has_columns(connections[name], _NEEDED[name]):
                raise LookupError(name)
        facts = SqliteFacts(connections["runs.db"], connections["runs/index.db"])
        if facts.quiet():
            return facts
    for connection in connections.values():
        connection.close()
    return None


def reading_facts() -> object:
    """The facts ``gaps`` and ``list`` read: the SQLite reader when the instance allows it,
    otherwise Dagster's API over the opened instance (which also reaps dead CLI runs)."""
    from spx_dagster.core.config.home import dagster_home

    fast = open_sqlite_facts(dagster_home())
    if fast is not None:
        return fast
    from spx_dagster.defs.session_state import DagsterFacts
    from spx_dagster.ops.instance import open_instance

    return DagsterFacts(open_instance())
