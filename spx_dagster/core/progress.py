"""Live progress of a session's run: in-process listeners and a small JSON file per run.

The assets report progress here; ``spx-data process`` listens in process to draw its progress bar,
and ``spx-data status`` in another process reads the files under ``$SPX_DATA_HOME/progress`` to
show runs in progress. Files are replaced atomically and throttled, so reporting costs nothing
measurable against the data work.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil


@dataclass
class ProgressSnapshot:
    """Where one session's run is; everything a progress bar or ``status`` needs."""

    session: str
    run_id: str
    stage: str = "starting"  # planning | fetching | validating | publishing | done | failed
    current: str = ""  # e.g. "greeks SPXW 2024-03-15"
    done: int = 0
    total: int = 0
    rows: int = 0
    bytes: int = 0
    retries: int = 0
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    rss_bytes: int = 0
    pid: int = field(default_factory=os.getpid)

    @property
    def elapsed_s(self) -> float:
        return max(self.updated_at - self.started_at, 1e-9)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def rows_per_min(self) -> float:
        return self.rows / self.elapsed_s * 60

    @property
    def mb_per_min(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s * 60

    @property
    def eta_s(self) -> float | None:
        if not self.done or not self.total:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(
            fraction=self.fraction,
            rows_per_min=self.rows_per_min,
            mb_per_min=self.mb_per_min,
            eta_s=self.eta_s,
        )
        return d


Listener = Callable[[ProgressSnapshot], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    """Receive every progress update in this process (used by ``spx-data process``)."""
    with _listeners_lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


class ProgressReporter:
    """Thread-safe progress of one run, mirrored to listeners and to ``<dir>/<run_id>.json``."""

    def __init__(
        self, *, session: str, run_id: str, directory: Path | None, min_interval_s: float = 0.5
    ) -> None:
        self.snapshot = ProgressSnapshot(session=session, run_id=run_id)
        self._dir = directory
        self._lock = threading.Lock()
        self._min_interval_s = min_interval_s
        self._last_write = 0.0
        self._process = psutil.Process()

    @property
    def path(self) -> Path | None:
        return self._dir / f"{self.snapshot.run_id}.json" if self._dir else None

    def stage(self, stage: str, *, total: int | None = None, done: int | None = None) -> None:
        with self._lock:
            self.snapshot.stage = stage
            if total is not None:
                self.snapshot.total = total
            if done is not None:
                self.snapshot.done = done
            self.snapshot.current = ""
        self._publish(force=True)

    def advance(
        self, *, current: str = "", rows: int = 0, nbytes: int = 0, retries: int = 0, steps: int = 1
    ) -> None:
        with self._lock:
            s = self.snapshot
            s.done += steps
            s.rows += rows
            s.bytes += nbytes
            s.retries += retries
            if current:
                s.current = current
        self._publish()

    def working_on(self, current: str) -> None:
        with self._lock:
            self.snapshot.current = current
        self._publish()

    def finish(self, stage: str = "done") -> None:
        self.stage(stage)
        if self.path is not None and stage == "done":
            self.path.unlink(missing_ok=True)

    def _publish(self, *, force: bool = False) -> None:
        now = time.time()
        with self._lock:
            self.snapshot.updated_at = now
            self.snapshot.rss_bytes = self._process.memory_info().rss
            snap = ProgressSnapshot(**asdict(self.snapshot))
            due = force or now - self._last_write >= self._min_interval_s
            if due:
                self._last_write = now
        with _listeners_lock:
            listeners = list(_listeners)
        for listener in listeners:
            listener(snap)
        if due and self._dir is not None:
            self._write(snap)

    def _write(self, snap: ProgressSnapshot) -> None:
        assert self._dir is not None
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f".tmp-{snap.run_id}.{threading.get_ident()}.json"
        tmp.write_text(json.dumps(snap.to_dict()))
        os.replace(tmp, self._dir / f"{snap.run_id}.json")


def read_progress(directory: Path, *, stale_after_s: float = 600) -> list[dict]:
    """Progress files of runs that are still alive (their process exists and wrote recently)."""
    out = []
    if not directory.is_dir():
        return out
    now = time.time()
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            snap = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        alive = psutil.pid_exists(int(snap.get("pid", -1)))
        if alive and now - float(snap.get("updated_at", 0)) < stale_after_s:
            out.append(snap)
    return out
