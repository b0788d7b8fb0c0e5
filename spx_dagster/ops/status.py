"""What ``spx-data status`` reports, collected from the terminal, the instance, the daemon, the
disks, memory, the catalog and the runs: plain data (``collect_status``), no printing.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spx_dagster.core.units import human_bytes, human_seconds
from spx_dagster.ops.status_facts import DagsterStatusFacts, FinishedRun, SqliteStatusFacts

StatusFacts = SqliteStatusFacts | DagsterStatusFacts

OK, WARNING, ERROR = "ok", "warning", "error"
_LEVELS = {OK: 0, WARNING: 1, ERROR: 2}
# A daemon heartbeats every 30 s; two missed beats and a margin mean it is not running.
DAEMON_FRESH_S = 120
MEMORY_LOW_BYTES = 2_000_000_000
MEMORY_HIGH_PERCENT = 90.0
FINAL_STAGES = ("done", "failed")
PROGRESS_DIRNAME = "progress"  # defs.assets.PROGRESS_DIRNAME


@dataclass
class Check:
    name: str
    level: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def _terminal(settings: Any) -> Check:
    from spx_dagster.core.thetadata.health import HealthState, probe_terminal

    td = settings.thetadata
    health = probe_terminal(
        str(td.base_url), api_version=str(td.api_version), connect_timeout_s=2.0, timeout_s=5.0
    )
    level = OK if health.state is HealthState.READY else ERROR
    return Check(
        "terminal",
        level,
        f"{health.state.value} at {td.base_url}: {health.detail}",
        {
            "state": health.state.value,
            "url": str(td.base_url),
            "probed": health.url,
            "api_version": str(td.api_version),
            "latency_ms": None if health.latency_ms is None else round(health.latency_ms, 1),
            "detail": health.detail,
        },
    )


def _instance(facts: StatusFacts) -> Check:
    from spx_dagster.core.config.home import dagster_home

    kind = facts.storage_kind
    runs = facts.runs_count()
    home = str(dagster_home())
    return Check(
        "instance",
        OK,
        f"{kind} storage at {home}, {runs} run(s)",
        {"dagster_home": home, "storage": kind, "runs": runs},
    )


def _daemon(facts: StatusFacts, now: float) -> Check:
    beats = facts.daemon_beats()
    required = facts.required_daemon_types()
    ages = {name: round(now - timestamp, 1) for name, timestamp in beats.items()}
    fresh = sorted(name for name, age in ages.items() if age <= DAEMON_FRESH_S)
    stale = [name for name in required if name not in fresh]
    details = {"running": not stale, "heartbeat_age_s": ages, "required": required}
    if not stale:
        return Check("daemon", OK, f"running ({len(fresh)} daemon(s) heartbeating)", details)
    newest = min(ages.values(), default=None)
    seen = f"last heartbeat {human_seconds(newest)} ago" if newest is not None else "never seen"
    return Check(
        "daemon",
        WARNING,
        f"not running ({seen}): schedules, sensors and backfills wait for it; start it with "
        "`spx-data serve`",
        details,
    )


def _disk(settings: Any, published: dict) -> Check:
    from spx_dagster.core.storage import estimate_session_bytes
    from spx_dagster.core.storage.disk import free_bytes

    min_free = float(settings.storage.min_free_gb) * 1e9
    recent = [s.dataset_bytes for s in list(published.values())[-5:]]
    need = estimate_session_bytes(
        settings.processing.datasets, recent, interval=str(settings.processing.interval)
    )
    places = {}
    level = OK
    for label in ("output_dir", "temp_dir"):
        path = Path(getattr(settings.storage, label))
        free = free_bytes(path)
        places[label] = {"path": str(path), "free_bytes": free}
        if free < min_free:
            level = ERROR
        elif free < min_free + need and level == OK:
            level = WARNING
    free_text = ", ".join(
        f"{human_bytes(p['free_bytes'])} free at {p['path']}" for p in places.values()
    )
    summary = f"{free_text} (min {settings.storage.min_free_gb:g} GB)"
    from spx_dagster.core.config.storage_access import storage_error_message, storage_problems

    unusable = storage_problems(settings, writing=False)
    if unusable:  # the sentence every other command exits 2 with
        level, summary = ERROR, storage_error_message(unusable)
    elif level == ERROR:
        summary += ": below storage.min_free_gb, runs will refuse to start; free space"
    elif level == WARNING:
        summary += f": less than one more session (~{human_bytes(need)}) above the minimum"
    return Check(
        "disk",
        level,
        summary,
        {**places, "min_free_gb": settings.storage.min_free_gb, "session_estimate_bytes": need},
    )


def _memory() -> Check:
    import psutil

    memory = psutil.virtual_memory()
    low = memory.available < MEMORY_LOW_BYTES or memory.percent > MEMORY_HIGH_PERCENT
    return Check(
        "memory",
        WARNING if low else OK,
        f"{human_bytes(memory.available)} available of {human_bytes(memory.total)} "
        f"({memory.percent:.0f} % used)",
        {
            "total_bytes": memory.total,
            "available_bytes": memory.available,
            "percent_used": memory.percent,
        },
    )


def _catalog(settings: Any, published_count: int) -> Check:
    from spx_dagster.core.config.home import catalog_path

    path = catalog_path(settings)
    details: dict[str, Any] = {"file": str(path), "exists": path.exists()}
    if not path.exists():
        level = WARNING if published_count else OK
        return Check(
            "catalog",
            level,
            f"no catalog yet at {path}"
            + ("; it is built by the spx/catalog asset after a publish" if published_count else ""),
            details,
        )
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            sessions, latest = connection.execute(
                "SELECT count(*), max(session) FROM sessions"
            ).fetchone()
    except duckdb.Error as error:
        details["error"] = str(error)
        return Check("catalog", WARNING, f"{path} cannot be read now ({error})", details)
    details.update(sessions=sessions, latest=latest.isoformat() if latest else None)
    behind = published_count - sessions
    details["behind"] = max(behind, 0)
    summary = f"{sessions} session(s) in {path}"
    if behind > 0:
        summary += f"; {behind} published session(s) not indexed yet (the sensor refreshes it)"
    return Check("catalog", OK, summary, details)


def _activity(facts: StatusFacts, published: dict) -> dict:
    last_run = facts.last_run()
    last_published = None
    if published:
        day, summary = next(reversed(published.items()))
        last_published = {
            "session": day.isoformat(),
            "status": summary.status,
            "created_at": summary.created_at,
        }
    return {"last_run": last_run, "last_published": last_published}


def _in_progress(facts: StatusFacts) -> list[dict]:
    from spx_dagster.core.config.home import spx_home
    from spx_dagster.core.progress import read_progress

    def progress_dir() -> Path:
        # defs.assets.progress_dir, without importing the pipeline (~1 s; a test holds them equal)
        return spx_home() / PROGRESS_DIRNAME

    runs = facts.runs_in_progress()
    progress = {
        p["run_id"]: p
        for p in read_progress(Path(progress_dir()))
        if p.get("stage") not in FINAL_STAGES
    }
    # A progress file outlives its run when the process that ran it lives on (an in-process
    # run, a test): only runs this instance has as in progress, or does not know, are shown.
    for run_id in [r for r in progress if r not in runs]:
        if facts.knows_run(run_id):
            del progress[run_id]
    out = []
    for run_id in sorted(set(runs) | set(progress)):
        row = dict(runs.get(run_id) or {"run_id": run_id, "job": None, "status": "STARTED"})
        snap = progress.get(run_id)
        if snap is not None:
            row["session"] = row.get("session") or snap.get("session")
            row["progress"] = {
                key: snap.get(key)
                for key in (
                    "stage",
                    "current",
                    "done",
                    "total",
                    "fraction",
                    "rows",
                    "bytes",
                    "rows_per_min",
                    "mb_per_min",
                    "rss_bytes",
                    "eta_s",
                    "retries",
                    "updated_at",
                )
            }
        out.append(row)
    return out


def _is_attempt(run: FinishedRun) -> bool:
    """A run that counts in error rates: not paused, canceled or refused before the close."""
    from spx_dagster.core.failure_categories import NOT_ATTEMPTS

    if run.status == "CANCELED":
        return False
    return run.error_category not in NOT_ATTEMPTS


def _error_rate(facts: StatusFacts, now: float) -> dict:
    week_ago = dt.datetime.fromtimestamp(now - 7 * 86400, tz=dt.UTC)
    finished = facts.finished_runs_since(week_ago)
    out = {}
    for label, seconds in (("last_24h", 86400), ("last_7d", 7 * 86400)):
        window = [
            r for r in finished if r.session_key and r.updated >= now - seconds and _is_attempt(r)
        ]
        failed = sum(1 for r in window if r.status != "SUCCESS")
        out[label] = {
            "runs": len(window),
            "failed": failed,
            "rate": round(failed / len(window), 4) if window else None,
        }
    return out


def collect_status(settings: Any, facts: StatusFacts) -> dict:
    """The status document (what --json prints), from the instance's facts
    (``ops.status_facts``: the SQLite reader or Dagster's API, which answer alike)."""
    from spx_dagster.core.storage import published_sessions

    now = time.time()
    published = published_sessions(Path(settings.storage.output_dir))
    checks = [
        _terminal(settings),
        _instance(facts),
        _daemon(facts, now),
        _disk(settings, published),
        _memory(),
        _catalog(settings, sum(1 for s in published.values() if s.status != "corrupt")),
    ]
    level = max((c.level for c in checks), key=_LEVELS.__getitem__)
    return {
        "status": level,
        "checked_at": dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(),
        "checks": {c.name: asdict(c) for c in checks},
        "published_sessions": len(published),
        "activity": _activity(facts, published),
        "runs_in_progress": _in_progress(facts),
        "error_rate": _error_rate(facts, now),
    }
