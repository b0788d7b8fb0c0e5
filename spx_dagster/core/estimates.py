"""One estimate of the time and space N sessions take, for ``gaps``, ``fill-gaps`` and ``backfill``.

A backfill is a pipeline whose floor is the terminal: the ``thetadata`` pool admits
``fetches_at_once`` fetch steps, each holding its share of the tier's lanes for the session's
fetch stage, while up to ``parallel_sessions`` runs start up, validate and publish around them.
So the model is the issue's "terminal time ÷ lanes + measured overhead":

    seconds  = fixed + N × pace
    pace     = max(terminal + overhead, cpu ÷ cores)   (a session ends every pace seconds)
    terminal = median fetch-stage seconds of published sessions ÷ fetches_at_once
    overhead = what the latest finished backfills spent per session beyond their terminal
               time: the time between their runs' ends (Σ(last end − first end) ÷ Σ(runs − 1),
               over the latest backfill and as many before it as it takes to cover 20 runs)
               less the terminal time; before any backfill, the bound the runs set, (worker start +
               median run) ÷ runs at once, less the terminal time (never below 0)
    cpu      = the machine's busy CPU seconds per session during those backfills (every process:
               run workers, the daemon, the terminal; ``core.cpu_clock``): the counter's rise
               from each backfill's submission to its last session's publish ÷ its sessions. Where
               the cores are the bottleneck this, not the runs' ends, sets the pace: a short
               backfill's runs start together and end bunched, which says little of the pace.
               Before any backfill: the median window of the published sessions (their runs'
               or ``process`` commands' CPU) plus what a backfill's run adds around it
    fixed    = the backfill daemon's cadence (Dagster wakes it every 30 s: the first runs start
               up to 30 s after the submission, the backfill ends up to 30 s after its last
               run) + the first run's length beyond one pace (the pipeline filling)

Bytes per session are the median of every complete session published so far (whatever range is
asked about: a range of gaps has no history of its own), or defaults before the first one.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from spx_dagster.core.cpu_clock import CpuReading, CpuWindow, reading_from_json
from spx_dagster.core.run_limits import BACKFILL_RUN_LIMIT

DEFAULT_SECONDS_PER_SESSION = 180.0
DEFAULT_BYTES_PER_SESSION = 400_000_000
# Dagster's backfill daemon loop (dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS, not
# configurable): on average half a loop before the first runs and half after the last one.
BACKFILL_DAEMON_CADENCE_S = 30.0
# A run worker's start (interpreter, Dagster, the code location) on two cores, measured by
# bench/backfill_overhead.py; `spx-data process` runs in process and never pays it.
RUN_WORKER_START_S = 5.0
# A session's CPU window opens when its run worker loads the code, which is before Dagster records
# the run's start (the code location's load, ~2-5 s on two cores), and closes before its end.
WINDOW_OPENS_BEFORE_RUN_S = 15.0
# What a backfill's run costs the machine beyond its session's own CPU window (the daemon's
# loops, the code server's launch, `backfill --wait` polling): measured per small-chain session
# of a 10-session backfill on two cores, daemon 0.9 + code server 0.7 + CLI 0.45 CPU-s (bench
# RESULTS "The estimate over 20 runs"). Only used before any backfill is measured.
RUN_MACHINE_CPU_S = 2.0
# A backfill is measured once it has this many successful runs (fewer say more about the start
# and the end of a backfill than about its pace).
MIN_MEASURED_RUNS = 3
# The pace is measured over at least this many runs where the history has them: the latest
# finished backfill and as many before it as it takes.
MEASURED_RUNS_WANTED = 20


class PublishedSizes(Protocol):
    """What the estimate reads of a published session (a manifest summary or a history fact)."""

    session: object
    status: str
    bytes: int
    seconds: float | None


class RunTimes(Protocol):
    """What the estimate reads of a run (``core.history.RunFact``)."""

    session: object
    status: str
    start_time: float | None
    end_time: float | None
    backfill_id: str | None

    @property
    def in_progress(self) -> bool: ...


@dataclass(frozen=True)
class GapEstimate:
    sessions: int
    seconds: float
    bytes: int
    seconds_per_session: float  # terminal + overhead: the pace of a backfill
    bytes_per_session: int
    basis: str  # "history" (medians of published sessions) or "default"
    parallel_sessions: int = 1  # runs at once
    fetches_at_once: int = 1  # fetch steps the terminal pool admits
    terminal_seconds_per_session: float = 0.0
    overhead_seconds_per_session: float = 0.0
    overhead_basis: str = "default"  # "backfill" (measured), "runs" (their bound) or "default"
    fixed_seconds: float = 0.0
    # The machine's, in the measured backfills (before any: the processed sessions' + a run's).
    cpu_seconds_per_session: float | None = None
    cores: int | None = None
    pace_basis: str = "runs"  # "cpu" when cpu ÷ cores set the pace, else "runs"
    measured_runs: int = 0  # the finished backfills' runs the overhead was measured over
    measured_backfills: int = 0

    def to_dict(self) -> dict:
        """The ``estimate`` document of ``--json`` (seconds rounded to tenths)."""
        data = asdict(self)
        for key in (
            "seconds",
            "seconds_per_session",
            "terminal_seconds_per_session",
            "overhead_seconds_per_session",
            "fixed_seconds",
            "cpu_seconds_per_session",
        ):
            if data[key] is not None:
                data[key] = round(data[key], 1)
        return data


def parallel_sessions(concurrency: int | None = None) -> int:
    """Runs of one backfill at once: its run limit, or ``backfill --concurrency N`` below it."""
    if concurrency is None:
        return BACKFILL_RUN_LIMIT
    return max(1, min(BACKFILL_RUN_LIMIT, int(concurrency)))


def _fetch_seconds(fact: PublishedSizes) -> float | None:
    value = getattr(fact, "fetch_seconds", None)
    return float(value) if value else None


@dataclass(frozen=True)
class MeasuredBackfill:
    """The pace of the latest finished backfills: seconds between their runs' ends, and the
    latest one's first run's length (the pipeline filling)."""

    pace_s: float
    first_run_s: float
    runs: int
    cpu_per_session_s: float | None = None  # the machine's busy CPU seconds (``cpu_of``)
    cores: int | None = None
    backfills: int = 1


def _submitted(runs: list[RunTimes]) -> CpuReading | None:
    """The reading its backfill's submission tagged its runs with, if any."""
    for run in runs:
        text = getattr(run, "cpu_at_submit", None)
        if text:
            try:
                return reading_from_json(json.loads(text))
            except ValueError:
                return None
    return None


def _cpu_of(runs: list[RunTimes], windows: Mapping[object, CpuWindow]) -> tuple[float, int] | None:
    """The machine's busy CPU seconds over ``runs`` (all of them, not per session) and its
    cores; None unless every run's session has a window taken during it, all in one boot (a
    session published again since records another run's window).

    From the backfill's submission (tagged on its runs) to its last publish: a short backfill's
    runs spend half their CPU outside their sessions' windows (worker start, Dagster's
    bookkeeping, the daemon); without that tag, from its first window's start.
    """
    found = []
    for run in runs:
        window = windows.get(run.session)
        if (
            window is None
            or window.start_at < run.start_time - WINDOW_OPENS_BEFORE_RUN_S
            or window.end_at > run.end_time + 1.0
        ):
            return None
        found.append(window)
    if not found or len({w.boot for w in found}) != 1:
        return None
    start = min(w.start_busy_s for w in found)
    submitted = _submitted(runs)
    if submitted is not None and submitted.boot == found[0].boot and submitted.busy_s <= start:
        start = submitted.busy_s
    return max(w.end_busy_s for w in found) - start, found[-1].cores


def _finished_backfills(runs: Iterable[RunTimes]) -> list[list[RunTimes]]:
    """The successful runs of every finished backfill with ``MIN_MEASURED_RUNS`` of them, the
    latest (by its last run's end) first."""
    by_backfill: dict[str, list[RunTimes]] = defaultdict(list)
    live: set[str] = set()
    for run in runs:
        if not run.backfill_id:
            continue
        if run.in_progress:
            live.add(run.backfill_id)
        elif run.status == "SUCCESS" and run.start_time and run.end_time:
            by_backfill[run.backfill_id].append(run)
    finished = [
        group
        for backfill_id, group in by_backfill.items()
        if backfill_id not in live and len(group) >= MIN_MEASURED_RUNS
    ]
    return sorted(finished, key=lambda group: max(r.end_time for r in group), reverse=True)


def measured_backfill(
    runs: Iterable[RunTimes], windows: Mapping[object, CpuWindow] | None = None
) -> MeasuredBackfill | None:
    """The pace of the latest finished backfill and, until ``MEASURED_RUNS_WANTED`` runs are
    covered, of those before it; None before any finished backfill of ``MIN_MEASURED_RUNS``.
    ``windows`` (session → its CPU window) give the CPU per session where they cover them.

    A short backfill says little of a long one's pace (its runs never queue; bench/RESULTS.md
    measured an estimate from a 3-session one 25 % off a 20-session one, both ways), so a
    short test backfill after a long one does not replace the long one's measure: it joins
    it, weighted by its runs.
    """
    pooled: list[list[RunTimes]] = []
    covered = 0
    for group in _finished_backfills(runs):
        pooled.append(group)
        covered += len(group)
        if covered >= MEASURED_RUNS_WANTED:
            break
    if not pooled:
        return None
    spans = gaps = 0.0
    busy = 0.0
    busy_sessions, cores = 0, None
    for group in pooled:
        ends = sorted(r.end_time for r in group)
        spans += ends[-1] - ends[0]
        gaps += len(ends) - 1
        cpu = _cpu_of(group, windows or {})
        if cpu is not None:
            busy += cpu[0]
            busy_sessions += len(group)
            cores = cores or cpu[1]
    latest = pooled[0]
    first = min(latest, key=lambda r: r.start_time)
    return MeasuredBackfill(
        pace_s=spans / gaps,
        first_run_s=first.end_time - first.start_time,
        runs=covered,
        cpu_per_session_s=busy / busy_sessions if busy_sessions else None,
        cores=cores,
        backfills=len(pooled),
    )


def _processed_cpu(windows: Iterable[CpuWindow]) -> tuple[float | None, int | None]:
    """Before any backfill: the machine's median busy CPU seconds in a published session's
    window (its run's process from code load to publish, or a ``process`` command's) plus what a
    backfill's run adds around it (``RUN_MACHINE_CPU_S``); (None, None) without windows."""
    found = list(windows)
    if not found:
        return None, None
    busy = statistics.median(w.busy_s for w in found)
    return busy + RUN_MACHINE_CPU_S, found[-1].cores


def estimate(
    gap_count: int,
    published: Iterable[PublishedSizes],
    *,
    fetches_at_once: int = 1,
    concurrency: int | None = None,
    runs: Iterable[RunTimes] = (),
) -> GapEstimate:
    """Time and size to backfill ``gap_count`` sessions (the model in the module docstring)."""
    facts = [f for f in published if f.status == "complete"]
    secs = [f.seconds for f in facts if f.seconds]
    sizes = [f.bytes for f in facts if f.bytes]
    fetches = {f.session: s for f in facts if (s := _fetch_seconds(f))}
    windows = {
        f.session: w for f in facts if (w := CpuWindow.from_json(getattr(f, "cpu_window", None)))
    }
    per_b = int(statistics.median(sizes)) if sizes else DEFAULT_BYTES_PER_SESSION
    basis = "history" if secs and sizes else "default"
    at_once = parallel_sessions(concurrency)
    slots = max(1, min(int(fetches_at_once), at_once))
    fetch_s = statistics.median(fetches.values()) if fetches else None
    run_s = statistics.median(secs) if secs else DEFAULT_SECONDS_PER_SESSION
    terminal = (fetch_s if fetch_s is not None else run_s) / slots
    measured = measured_backfill(runs, windows)
    if measured is not None:
        overhead, overhead_basis = max(0.0, measured.pace_s - terminal), "backfill"
        first_run = measured.first_run_s
        cpu_per_session, cores = measured.cpu_per_session_s, measured.cores
    else:
        first_run = RUN_WORKER_START_S + run_s
        overhead = max(0.0, first_run / at_once - terminal)
        overhead_basis = "runs" if secs else "default"
        cpu_per_session, cores = _processed_cpu(windows.values())
    pace_basis = "runs"
    if cpu_per_session is not None and cores:
        cpu_pace = cpu_per_session / cores
        if cpu_pace > terminal + overhead:
            overhead, pace_basis = cpu_pace - terminal, "cpu"
    pace = terminal + overhead
    fixed = BACKFILL_DAEMON_CADENCE_S + max(0.0, first_run - pace) if gap_count else 0.0
    return GapEstimate(
        sessions=gap_count,
        seconds=fixed + pace * gap_count,
        bytes=per_b * gap_count,
        seconds_per_session=pace,
        bytes_per_session=per_b,
        basis=basis,
        parallel_sessions=at_once,
        fetches_at_once=slots,
        terminal_seconds_per_session=terminal,
        overhead_seconds_per_session=overhead,
        overhead_basis=overhead_basis,
        fixed_seconds=fixed,
        cpu_seconds_per_session=cpu_per_session,
        cores=cores,
        pace_basis=pace_basis,
        measured_runs=measured.runs if measured else 0,
        measured_backfills=measured.backfills if measured else 0,
    )


def estimate_sessions(
    output_dir: Path,
    count: int,
    *,
    pool_limit: int,
    runs: Iterable[RunTimes] = (),
    concurrency: int | None = None,
) -> GapEstimate:
    """The estimate every command prints: from all sessions published under ``output_dir`` and
    the runs of the instance."""
    from spx_dagster.core.storage import published_sessions

    return estimate(
        count,
        published_sessions(Path(output_dir)).values(),
        fetches_at_once=pool_limit,
        concurrency=concurrency,
        runs=runs,
    )
