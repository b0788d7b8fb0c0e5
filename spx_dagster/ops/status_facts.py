"""What ``spx-data status`` reads of the Dagster instance, from one of two readers that give the
same answer: ``SqliteStatusFacts`` reads spx-data's default SQLite instance with ``sqlite3``
(no Dagster import, so ``status`` answers in well under a second at full history) and
``DagsterStatusFacts`` goes through Dagster's API (any storage, and the reaping of dead runs
that ``open_instance`` does). A test holds the two equal.

``open_status_facts`` takes the SQLite reader only where its answer is Dagster's:

- the instance is the quiet default SQLite one (``ops.sqlite_facts``: no storage of its own
  in ``dagster.yaml``, the tables and columns read here, no run in progress, so no dead CLI run
  waits to be reaped);
- the daemon types the instance requires are known for this ``dagster.yaml`` and this Dagster:
  Dagster derives them from the instance's scheduler, run coordinator, monitoring, retries and
  auto-materialize settings, so the Dagster path records them (``.spx-data-daemons.json`` in
  ``DAGSTER_HOME``, keyed by ``dagster.yaml``'s inode, mtime and size and Dagster's version) and
  the SQLite path trusts them only while that key matches.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spx_dagster.ops.sqlite_facts import (
    ERROR_CATEGORY_TAG,
    IN_PROGRESS_STATUSES,
    PARTITION_TAG,
    SqliteFacts,
    open_sqlite_facts,
)

FINISHED_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")
DAEMONS_CACHE_NAME = ".spx-data-daemons.json"
INSTANCE_YAML_NAME = "dagster.yaml"  # ops.instance.INSTANCE_YAML_NAME
# How SQLAlchemy stores a DATETIME in SQLite: naive UTC, always with microseconds.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class FinishedRun:
    """A finished run as the error rate counts it."""

    status: str
    session_key: str | None
    error_category: str | None
    updated: float


def _dagster_version() -> str | None:
    """Dagster's version, read from its ``version.py`` without importing it (~15 ms, where
    ``importlib.metadata`` takes ~80 ms)."""
    spec = importlib.util.find_spec("dagster")
    if spec is None or spec.origin is None:
        return None
    try:
        return Path(spec.origin).with_name("version.py").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _daemons_key(dagster_home: Path) -> list | None:
    try:
        stat = (dagster_home / INSTANCE_YAML_NAME).stat()
    except OSError:
        return None
    return [stat.st_ino, stat.st_mtime_ns, stat.st_size, _dagster_version()]


def _cached_daemon_types(dagster_home: Path) -> list[str] | None:
    key = _daemons_key(dagster_home)
    try:
        cached = json.loads((dagster_home / DAEMONS_CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if key is None or not isinstance(cached, dict) or cached.get("key") != key:
        return None
    types = cached.get("required")
    return types if isinstance(types, list) and all(isinstance(t, str) for t in types) else None


def _record_daemon_types(dagster_home: Path, types: list[str]) -> None:
    from spx_dagster.core.storage.atomic import atomic_write_bytes

    key = _daemons_key(dagster_home)
    if key is None:
        return
    document = {"key": key, "required": types}
    # A read-only home keeps no record: the next status takes the Dagster path again.
    with contextlib.suppress(OSError):
        atomic_write_bytes(dagster_home / DAEMONS_CACHE_NAME, json.dumps(document).encode())


def _utc_timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


class SqliteStatusFacts:
    """The status facts of a quiet default SQLite instance, read with ``sqlite3``."""

    storage_kind = "sqlite"

    def __init__(self, quiet: SqliteFacts, required: list[str]) -> None:
        self._facts, self._runs, self._required = quiet, quiet.runs_db, required

    def close(self) -> None:
        self._facts.close()

    def runs_count(self) -> int:
        return self._runs.execute("SELECT count(*) FROM runs").fetchone()[0]

    def daemon_beats(self) -> dict[str, float]:
        beats = {}
        for daemon_type, body in self._runs.execute(
            "SELECT daemon_type, body FROM daemon_heartbeats"
        ):
            timestamp = json.loads(body).get("timestamp") if body else None
            if isinstance(timestamp, (int, float)):
                beats[daemon_type] = float(timestamp)
        return beats

    def required_daemon_types(self) -> list[str]:
        return list(self._required)

    def _tags(self, keys: tuple[str, ...], run_ids: list[str] | None = None) -> dict:
        """``{(run_id, key): value}`` for these keys (of these runs), in one query: a tag
        subquery per run would be planned by the (key, value) index, a scan per row."""
        marks = ",".join("?" * len(keys))
        sql = f"SELECT run_id, key, value FROM run_tags WHERE key IN ({marks})"
        parameters: tuple = keys
        if run_ids is not None:
            sql += f" AND run_id IN ({','.join('?' * len(run_ids))})"
            parameters = (*keys, *run_ids)
        return {(run_id, key): value for run_id, key, value in self._runs.execute(sql, parameters)}

    def _rows(self, where: str, parameters: tuple, limit: str = "") -> list[dict]:
        rows = self._runs.execute(
            "SELECT run_id, pipeline_name, status, start_time, update_timestamp"
            f" FROM runs {where} ORDER BY id DESC {limit}",
            parameters,
        ).fetchall()
        tags = self._tags((PARTITION_TAG,), [row[0] for row in rows]) if rows else {}
        return [
            {
                "run_id": run_id,
                "job": job,
                "status": status,
                "session": tags.get((run_id, PARTITION_TAG)),
                "started": started,
                "updated": _utc_timestamp(updated),
            }
            for run_id, job, status, started, updated in rows
        ]

    def last_run(self) -> dict | None:
        rows = self._rows("", (), "LIMIT 1")
        return rows[0] if rows else None

    def runs_in_progress(self) -> dict[str, dict]:
        marks = ",".join("?" * len(IN_PROGRESS_STATUSES))
        rows = self._rows(f"WHERE status IN ({marks})", IN_PROGRESS_STATUSES)
        return {row["run_id"]: row for row in rows}

    def knows_run(self, run_id: str) -> bool:
        found = self._runs.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return found is not None

    def finished_runs_since(self, since: dt.datetime) -> list[FinishedRun]:
        marks = ",".join("?" * len(FINISHED_STATUSES))
        after = since.astimezone(dt.UTC).replace(tzinfo=None).strftime(_SQLITE_DATETIME)
        rows = self._runs.execute(
            "SELECT run_id, status, update_timestamp FROM runs"
            f" WHERE status IN ({marks}) AND update_timestamp > ?",
            (*FINISHED_STATUSES, after),
        ).fetchall()
        tags = self._tags((PARTITION_TAG, ERROR_CATEGORY_TAG))  # 0.8 s as subqueries at 3,000
        return [
            FinishedRun(
                status,
                tags.get((run_id, PARTITION_TAG)),
                tags.get((run_id, ERROR_CATEGORY_TAG)),
                _utc_timestamp(updated),
            )
            for run_id, status, updated in rows
        ]


class DagsterStatusFacts:
    """The status facts of any instance, through Dagster's API."""

    def __init__(self, instance: Any, dagster_home: Path | None = None) -> None:
        self._instance, self._home = instance, dagster_home

    def close(self) -> None:
        """Nothing to close: the instance is the caller's."""

    @property
    def storage_kind(self) -> str:
        name = type(self._instance.run_storage).__name__.lower()
        for kind in ("postgres", "mysql", "sqlite"):
            if kind in name:
                return kind
        return name

    def runs_count(self) -> int:
        return self._instance.get_runs_count()

    def daemon_beats(self) -> dict[str, float]:
        return {
            name: beat.timestamp for name, beat in self._instance.get_daemon_heartbeats().items()
        }

    def required_daemon_types(self) -> list[str]:
        types = list(self._instance.get_required_daemon_types())
        if self._home is not None:
            _record_daemon_types(self._home, types)
        return types

    @staticmethod
    def _row(record: Any) -> dict:
        run = record.dagster_run
        return {
            "run_id": run.run_id,
            "job": run.job_name,
            "status": run.status.value,
            "session": run.tags.get(PARTITION_TAG),
            "started": record.start_time,
            "updated": record.update_timestamp.timestamp(),
        }

    def last_run(self) -> dict | None:
        records = self._instance.get_run_records(limit=1)
        return self._row(records[0]) if records else None

    def runs_in_progress(self) -> dict[str, dict]:
        import dagster as dg

        statuses = [dg.DagsterRunStatus(s) for s in IN_PROGRESS_STATUSES]
        records = self._instance.get_run_records(dg.RunsFilter(statuses=statuses))
        return {r.dagster_run.run_id: self._row(r) for r in records}

    def knows_run(self, run_id: str) -> bool:
        return self._instance.get_run_by_id(run_id) is not None

    def finished_runs_since(self, since: dt.datetime) -> list[FinishedRun]:
        import dagster as dg

        statuses = [dg.DagsterRunStatus(s) for s in FINISHED_STATUSES]
        records = self._instance.get_run_records(
            dg.RunsFilter(statuses=statuses, updated_after=since)
        )
        return [
            FinishedRun(
                r.dagster_run.status.value,
                r.dagster_run.tags.get(PARTITION_TAG),
                r.dagster_run.tags.get(ERROR_CATEGORY_TAG),
                r.update_timestamp.timestamp(),
            )
            for r in records
        ]


def open_sqlite_status_facts(dagster_home: Path) -> SqliteStatusFacts | None:
    """The SQLite reader where its answer is Dagster's (module docstring), or None."""
    required = _cached_daemon_types(dagster_home)
    if required is None:
        return None
    quiet = open_sqlite_facts(dagster_home)
    return None if quiet is None else SqliteStatusFacts(quiet, required)


def open_status_facts() -> SqliteStatusFacts | DagsterStatusFacts:
    """The reader ``status`` uses: SQLite where it answers alike, otherwise the opened instance
    (which creates a missing home and reaps dead CLI runs)."""
    from spx_dagster.core.config.home import dagster_home

    home = dagster_home()
    fast = open_sqlite_status_facts(home)
    if fast is not None:
        return fast
    from spx_dagster.ops.instance import open_instance

    return DagsterStatusFacts(open_instance(), home)
