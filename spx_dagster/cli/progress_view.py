"""Live progress on stderr: one session's run, or a whole backfill.

``SessionProgressView`` is fed in process by ``core.progress`` listeners (``spx-data process``);
``BackfillProgressView`` is fed by polling the instance for a backfill's runs and the progress
files that run workers write under ``$SPX_DATA_HOME/progress``. Both draw with rich on stderr so
stdout stays clean for results and ``--json``; on a non-terminal stderr rich draws only the final
state, so logs and test captures get one line rather than an animation. While a session runs in
this process its view owns the terminal (``StdioDiversion``): Dagster's compute-log capture would
otherwise hide the terminal from rich for the whole run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Collection, Iterable
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from spx_dagster.cli.output import PIPE_WIDTH, stderr_console
from spx_dagster.core.progress import ProgressSnapshot
from spx_dagster.core.units import (  # noqa: F401 (human_count: the commands import it here)
    human_bytes,
    human_count,
    human_rows_per_min,
)

STAGE_NAMES = {
    "starting": "starting",
    "listing": "listing chain",
    "fetch": "fetching",
    "fetched": "fetched",
    "validate": "validating",
    "validated": "validated",
    "publish": "publishing",
    "done": "done",
}


def human_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03`` / ``--:--`` for unknown."""
    if seconds is None:
        return "--:--"
    total = round(max(seconds, 0.0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_console() -> Console:
    """stderr; wide enough for the whole bar when stderr is a file or a pipe."""
    console = stderr_console()
    if not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def snapshot_fields(snapshot: ProgressSnapshot | dict) -> dict[str, str]:
    """The text of every progress figure (shared by the bar and ``spx-data status``)."""
    snap = snapshot if isinstance(snapshot, dict) else snapshot.to_dict()
    done, total = int(snap.get("done") or 0), int(snap.get("total") or 0)
    percent = f"{100.0 * done / total:5.1f}%" if total else "     "
    return {
        "stage": STAGE_NAMES.get(str(snap.get("stage")), str(snap.get("stage"))),
        "counts": f"{done:>5}/{total:<5} {percent}" if total else f"{'':>11} {percent}",
        "current": str(snap.get("current") or ""),
        "rows_per_min": human_rows_per_min(float(snap.get("rows_per_min") or 0)),
        "mb_per_min": f"{float(snap.get('mb_per_min') or 0):.1f} MB/min",
        "memory": f"mem {human_bytes(float(snap.get('rss_bytes') or 0))}",
        "eta": f"ETA {human_duration(snap.get('eta_s'))}",
    }


class StdioDiversion:
    """While a run executes in this process, file descriptors 1 and 2 point at ``/dev/null`` and
    the progress bar draws on a copy of the stderr they had.

    Dagster's compute-log capture points descriptors 1 and 2 at files for the whole run and
    mirrors the files back with a ``tail -F`` and a Python watcher process per stream. On a
    terminal that has two effects: inside the run stderr is a file, so rich sees no terminal and
    draws nothing until the run ends; and Ctrl-C, which the terminal sends to its whole foreground
    process group, makes each watcher print a ``KeyboardInterrupt`` traceback. Diverted first, the
    bar keeps the terminal, the helpers inherit ``/dev/null``, and ``--json`` keeps stdout to its
    one document; what the run itself prints is still in its compute logs (web UI).
    """

    def __init__(self) -> None:
        self._saved: dict[int, int] = {}
        self.stderr: TextIO | None = None

    def start(self) -> TextIO | None:
        """Divert both descriptors; a stream on the former stderr (None if it had none)."""
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            if _fileno(stream) != fd:  # a test runner's stream: nothing reaches the descriptor
                continue
            stream.flush()
            self._saved[fd] = os.dup(fd)
        if 2 in self._saved:
            encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
            self.stderr = os.fdopen(
                os.dup(self._saved[2]), "w", encoding=encoding, errors="replace"
            )
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in self._saved:
                os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        return self.stderr

    def restore(self) -> None:
        """Point the descriptors back where they were (idempotent)."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # what was written while diverted belongs to /dev/null
        saved, self._saved = self._saved, {}
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        stream, self.stderr = self.stderr, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


class SessionProgressView:
    """A progress bar for one session, two lines that fit 80 columns: the stage, done/total, %
    and ETA with the bar; then rows/min, MB/min, memory and the current root and expiration.
    Thread-safe ``update`` (fetch threads call it).

    Entered without a ``console``, the view owns the terminal for the run (``StdioDiversion``).
    """

    def __init__(self, label: str, *, enabled: bool = True, console: Console | None = None):
        self.label = label
        self.enabled = enabled
        self._own_console = console is None
        self.console = console or progress_console()
        self._diversion = StdioDiversion()
        self._lock = threading.Lock()
        self._rates: dict[str, str] = {}
        self._details = ""
        self._stopping: Collection[str] = ()  # stages a requested stop still ends
        self._progress = self._new_progress()
        self._task: TaskID | None = None
        self._live: Live | None = None
        self.last: ProgressSnapshot | None = None

    def _new_progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.fields[stage]:<13}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            transient=False,
            auto_refresh=False,
        )

    def __enter__(self) -> SessionProgressView:
        if self.enabled:
            if self._own_console:
                stream = self._diversion.start()
                if stream is not None:
                    self.console = Console(file=stream, highlight=False, soft_wrap=True)
                    if not self.console.is_terminal:
                        self.console.width = max(self.console.width, PIPE_WIDTH)
                    self._progress = self._new_progress()
            fields = snapshot_fields({"stage": "starting"})
            self._details = self._details_line(fields)
            self._task = self._progress.add_task(self.label, total=None, **fields)
            self._live = Live(
                console=self.console,
                get_renderable=self._render,
                refresh_per_second=4,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Draw the last state and give the terminal back (idempotent)."""
        with self._lock:
            live, self._live = self._live, None
        try:
            if live is not None:
                live.refresh()
                live.__exit__(None, None, None)
                if not self.console.is_terminal:
                    self.console.line()
        finally:  # even when a Ctrl-C lands here, what follows must reach the terminal
            self._diversion.restore()
            if self._own_console:
                self.console = progress_console()

    def _render(self) -> Group:
        return Group(self._progress.get_renderable(), Text(self._details, no_wrap=True))

    @staticmethod
    def _details_line(fields: dict[str, str]) -> str:
        parts = [fields["rows_per_min"], fields["mb_per_min"], fields["memory"], fields["current"]]
        return "  " + "  ".join(p for p in parts if p)

    def update(self, snapshot: ProgressSnapshot) -> None:
        with self._lock:
            self.last = snapshot
            if self._task is None or self._live is None:
                return
            fields = snapshot_fields(snapshot)
            # Each asset reports its own figures; keep the fetch's rates once it has moved on.
            if snapshot.stage == "fetch":
                self._rates = {k: fields[k] for k in ("rows_per_min", "mb_per_min")}
            fields.update(self._rates)
            if snapshot.stage in self._stopping:
                fields.update(stage="stopping", current="Ctrl-C again abandons the run now")
            self._details = self._details_line(fields)
            self._progress.update(
                self._task, total=snapshot.total or None, completed=snapshot.done, **fields
            )

    def stopping(self, stages: Collection[str]) -> None:
        """Show that a stop was asked: the bar reads ``stopping`` while the run is in one of
        ``stages`` (those the stop ends); past them the run finishes and the bar says so."""
        with self._lock:
            self._stopping = frozenset(stages)
            last = self.last
        if last is not None:
            self.update(last)
        elif self._task is not None:
            self._progress.update(self._task, stage="stopping")

    def message(self, text: str, *, style: str = "yellow") -> None:
        """A line above the bar (or plain on stderr when the view is off)."""
        line = Text(text, style=style)
        if self._live is not None:
            self._live.console.print(line)
        else:
            self.console.print(line)


class BackfillProgressView:
    """Overall progress of a backfill (done/failed/total, ETA) and its sessions in progress."""

    def __init__(self, backfill_id: str, *, enabled: bool = True, console: Console | None = None):
        self.backfill_id = backfill_id
        self.enabled = enabled
        self.console = console or progress_console()
        self._live: Live | None = None

    def __enter__(self) -> BackfillProgressView:
        if self.enabled:
            self._live = Live(
                Text(f"backfill {self.backfill_id}: waiting for the daemon"),
                console=self.console,
                refresh_per_second=2,
                transient=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, progress, running: Iterable[dict] = ()) -> None:
        """Redraw from a ``backfills.BackfillProgress`` and the progress files of its runs."""
        if self._live is None:
            return
        self._live.update(render_backfill(progress, running), refresh=True)


def render_backfill(progress, running: Iterable[dict] = ()) -> Group:
    """The backfill's overall bar and one line per session in progress."""
    settled = len(progress.done) + len(progress.failed)
    bar = Progress(
        TextColumn("[bold]backfill {task.description}"),
        BarColumn(bar_width=30),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[eta]}"),
    )
    counts = (
        f"{len(progress.done)} done, {len(progress.failed)} failed, "
        f"{len(progress.running)} running, {len(progress.queued) + len(progress.not_started)} "
        f"waiting / {progress.total}"
    )
    bar.add_task(
        progress.backfill_id,
        total=progress.total or None,
        completed=settled,
        counts=counts,
        eta=f"{progress.status.lower()}  elapsed {human_duration(progress.elapsed_s)}  "
        f"ETA {human_duration(progress.eta_s)}",
    )
    table = Table.grid(padding=(0, 2))
    for snap in running:
        f = snapshot_fields(snap)
        done, total = snap.get("done", 0), snap.get("total", 0)
        pct = f"{100.0 * done / total:.0f}%" if total else ""
        table.add_row(
            str(snap.get("session")),
            f["stage"],
            f"{done}/{total} {pct}",
            f["rows_per_min"],
            f["eta"],
            Text(f["current"], style="dim"),
        )
    return Group(bar, table)
