"""Runs started from the CLI: one session in process, and the catalog.

``process``, ``retry`` and ``demo`` run a session's three assets in this process on the
persistent instance (so the run shows in the UI like any other), through the session job of a
``Definitions`` built per call: resources then read ``SPX_DATA_HOME`` as it is now, not as it was
when ``spx_dagster.definitions`` was first imported. The run executes on a worker thread so the
main thread stays free for Ctrl-C: the first one asks the run to stop at the next progress point
(staged answers are kept for resume), a second one marks the run canceled and gives up at once.
Backfills are ``ops/backfills.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from spx_dagster.core.progress import ProgressSnapshot, add_listener, remove_listener
from spx_dagster.core.storage import Manifest, load_manifest
from spx_dagster.defs.constants import (
    CATALOG_JOB,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    FORCED_TAG,
    SESSION_JOB,
    TRIGGER_TAG,
)
from spx_dagster.defs.dagster_internals import make_new_run_id
from spx_dagster.defs.dead_runs import WORKER_TAG, worker_tag
from spx_dagster.defs.partitions import session_key

INTERRUPTED = "interrupted"
# Progress stages at which a stop request ends the run; publishing always runs to its end
# because it is short and commits the session atomically.
STOPPABLE_STAGES = frozenset({"starting", "listing", "fetch", "fetched", "validate", "validated"})
# Dagster's console logger would draw over the progress bar; the run's events are in the
# instance (web UI, `spx-data errors`), so the CLI keeps the console quiet unless asked.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def run_tags(
    *, trigger: str, forced: bool = False, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The tags every CLI-started run or backfill carries (``spx/trigger``, ``spx/forced``)."""
    tags = {TRIGGER_TAG: trigger}
    if forced:
        tags[FORCED_TAG] = "true"
    tags.update(extra or {})
    return tags


def load_definitions() -> dg.Definitions:
    """The code location's assets and jobs with resources bound to the current environment."""
    from spx_dagster import definitions

    return dg.Definitions(
        assets=list(definitions.defs.assets or ()),
        jobs=list(definitions.defs.jobs or ()),
        resources=definitions.build_resources(),
    )


@contextlib.contextmanager
def environment(overrides: Mapping[str, str] | None) -> Iterator[None]:
    """Set environment variables for the duration (resources read settings from it)."""
    saved = {key: os.environ.get(key) for key in overrides or {}}
    os.environ.update(overrides or {})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------------------------------
# One session in process
# ---------------------------------------------------------------------------------------------
@dataclass
class SessionOutcome:
    """How one in-process run of a session ended.

    ``status`` is ``success``, ``failed`` or ``interrupted``; on failure ``error_category`` and
    ``error_message`` come from the run's ``spx/error_*`` tags (set by the assets) and
    ``failed_step`` names the asset whose step failed.
    """

    session: dt.date
    run_id: str
    status: str
    seconds: float
    error_category: str | None = None
    error_message: str | None = None
    failed_step: str | None = None
    manifest: Manifest | None = None
    last_progress: ProgressSnapshot | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_dict(self) -> dict:
        m = self.manifest
        return {
            "session": self.session.isoformat(),
            "run_id": self.run_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "error_category": self.error_category,
            "error_message": self.error_message,
            "failed_step": self.failed_step,
            "rows": m.rows if m else None,
            "bytes": m.bytes if m else None,
            "files": len(m.files) if m else None,
            "quality_score": m.quality.score if m else None,
            "requests": m.requests if m else None,
            "retries": sum(m.retries.values()) if m else None,
            "manifest_status": m.status if m else None,
        }


class SessionStopped(dg.Failure):
    """Raised inside the run (from the progress listener) when the user asked it to stop."""


@dataclass
class SessionRun:
    """One session's assets run in process on a worker thread.

    Call ``start()``, then ``join()`` in a loop from the main thread so that Ctrl-C reaches it;
    ``request_stop()`` ends the run at its next progress point, ``abandon()`` marks it canceled
    without waiting (the caller then exits the process).
    """

    instance: dg.DagsterInstance
    session: dt.date
    tags: Mapping[str, str]
    on_progress: Callable[[ProgressSnapshot], None] | None = None
    env_overrides: Mapping[str, str] | None = None
    output_dir: Path | None = None
    run_id: str = field(default_factory=make_new_run_id)
    outcome: SessionOutcome | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None
    _last: ProgressSnapshot | None = None
    _started: float = 0.0

    def start(self) -> SessionRun:
        self._started = time.monotonic()
        add_listener(self._listen)
        self._thread = threading.Thread(target=self._execute, name=f"run-{self.session}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds; True once the run has ended."""
        # An Event, not Thread.join: a KeyboardInterrupt inside join() can leave the thread
        # looking finished while it still runs (a CPython quirk of interrupted lock waits).
        return self._done.wait(timeout)

    def wait(self) -> SessionOutcome:
        """Block until the run ends (interruptible by Ctrl-C in the main thread)."""
        while not self.join(0.2):
            continue  # short waits, so that Ctrl-C reaches the main thread
        if self._error is not None:
            raise self._error
        assert self.outcome is not None
        return self.outcome

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def abandon(self, reason: str) -> None:
        """Mark the run canceled (category interrupted) and free its pool slots, now."""
        remove_listener(self._listen)
        with contextlib.suppress(Exception):
            self.instance.add_run_tags(
                self.run_id, {ERROR_CATEGORY_TAG: INTERRUPTED, ERROR_MESSAGE_TAG: reason}
            )
        with contextlib.suppress(Exception):
            run = self.instance.get_run_by_id(self.run_id)
            if run is not None and not run.is_finished:
                self.instance.report_run_canceled(run, message=reason)
        with contextlib.suppress(Exception):
            self.instance.event_log_storage.free_concurrency_slots_for_run(self.run_id)

    def _listen(self, snapshot: ProgressSnapshot) -> None:
        if snapshot.run_id != self.run_id:
            return
        self._last = snapshot
        if self.on_progress is not None:
            self.on_progress(snapshot)
        if self._stop.is_set() and snapshot.stage in STOPPABLE_STAGES:
            raise SessionStopped(
                description=(
                    f"stopped by the user (Ctrl-C) during {snapshot.stage} after "
                    f"{snapshot.done} of {snapshot.total} steps; staged answers are kept and "
                    "the next run resumes from them"
                ),
                metadata={"error_category": INTERRUPTED, "stage": snapshot.stage},
                allow_retries=False,
            )

    def _execute(self) -> None:
        try:
            with environment(self.env_overrides):
                job = load_definitions().resolve_job_def(SESSION_JOB)
                result = job.execute_in_process(
                    run_config=QUIET_RUN_CONFIG,
                    instance=self.instance,
                    partition_key=session_key(self.session),
                    run_id=self.run_id,
                    tags={**self.tags, WORKER_TAG: worker_tag()},
                    raise_on_error=False,
                )
            self.outcome = self._outcome(result)
        except BaseException as error:  # surfaced to the main thread by wait()
            self._error = error
        finally:
            remove_listener(self._listen)
            self._done.set()

    def _outcome(self, result: dg.ExecuteInProcessResult) -> SessionOutcome:
        seconds = time.monotonic() - self._started
        outcome = SessionOutcome(
            session=self.session,
            run_id=self.run_id,
            status="success" if result.success else "failed",
            seconds=seconds,
            last_progress=self._last,
        )
        if result.success:
            if self.output_dir is not None:
                outcome.manifest = load_manifest(self.output_dir, self.session)
            if self._stop.is_set():
                outcome.status = INTERRUPTED  # published before the stop could take effect
            return outcome
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        if failure is not None:
            outcome.failed_step = _asset_name(failure.step_key)
        if self._stop.is_set():
            outcome.status = INTERRUPTED
            message = (
                "stopped by the user (Ctrl-C); staged answers are kept and the next run "
                "resumes from them"
            )
            self.instance.add_run_tags(
                self.run_id, {ERROR_CATEGORY_TAG: INTERRUPTED, ERROR_MESSAGE_TAG: message}
            )
        run = self.instance.get_run_by_id(self.run_id)
        tags = run.tags if run is not None else {}
        outcome.error_category = tags.get(ERROR_CATEGORY_TAG) or "unknown"
        outcome.error_message = tags.get(ERROR_MESSAGE_TAG) or _failure_text(failure)
        return outcome


def _asset_name(step_key: str | None) -> str | None:
    if not step_key:
        return None
    return step_key.replace("__", "/")


def _failure_text(event: dg.DagsterEvent | None) -> str | None:
    if event is None:
        return None
    data = event.step_failure_data
    if data is None or data.error is None:
        return event.message
    error = data.error
    while error.cause is not None and error.cls_name in {"DagsterUserCodeExecutionError", None}:
        error = error.cause
    return error.message.strip()


def run_session(
    instance: dg.DagsterInstance,
    session: dt.date,
    *,
    tags: Mapping[str, str],
    output_dir: Path | None,
    on_progress: Callable[[ProgressSnapshot], None] | None = None,
    env_overrides: Mapping[str, str] | None = None,
) -> SessionRun:
    """Start the session's run in process (see ``SessionRun``); returns the started run."""
    return SessionRun(
        instance=instance,
        session=session,
        tags=tags,
        on_progress=on_progress,
        env_overrides=env_overrides,
        output_dir=output_dir,
    ).start()


@dataclass
class CatalogOutcome:
    run_id: str
    ok: bool
    sessions: int | None
    files: int | None
    error: str | None = None
    interrupted: bool = False  # Ctrl-C came while it ran (it was let finish)


def refresh_catalog(instance: dg.DagsterInstance, *, tags: Mapping[str, str]) -> CatalogOutcome:
    """Materialize ``spx/catalog`` in process (its pool keeps it the only DuckDB writer).

    It runs on a worker thread, as a session's run does, so that a Ctrl-C reaches this thread
    and not Dagster (which would record it as a failure with no message). The refresh takes a
    moment and rewrites the catalog in one transaction, so it is let finish; ``interrupted`` says a
    Ctrl-C came meanwhile.
    """
    done = threading.Event()
    result: list[CatalogOutcome] = []
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            result.append(_refresh_catalog(instance, tags=tags))
        except BaseException as error:  # surfaced to the main thread below
            errors.append(error)
        finally:
            done.set()

    threading.Thread(target=execute, name="catalog-refresh", daemon=True).start()
    interrupted = False
    while True:
        try:
            while not done.wait(0.2):
                continue  # short waits, so that Ctrl-C reaches the main thread
            break
        except KeyboardInterrupt:
            interrupted = True
    if errors:
        raise errors[0]
    outcome = result[0]
    outcome.interrupted = interrupted
    return outcome


def _refresh_catalog(instance: dg.DagsterInstance, *, tags: Mapping[str, str]) -> CatalogOutcome:
    job = load_definitions().resolve_job_def(CATALOG_JOB)
    result = job.execute_in_process(
        run_config=QUIET_RUN_CONFIG,
        instance=instance,
        tags={**tags, WORKER_TAG: worker_tag()},
        raise_on_error=False,
    )
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        return CatalogOutcome(result.run_id, False, None, None, _failure_text(failure))
    events = result.asset_materializations_for_node("spx__catalog")
    metadata = {k: v.value for k, v in events[-1].metadata.items()} if events else {}
    return CatalogOutcome(
        result.run_id, True, metadata.get("sessions"), metadata.get("files"), None
    )
