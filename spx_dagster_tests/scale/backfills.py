"""What the scale-out tests assert about a finished backfill, read from the real instance."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType

from spx_dagster.core import calendar
from spx_dagster.core.storage import load_manifest, verify_session
from spx_dagster.defs.constants import BACKFILL_TAG, PARQUET, RAW
from spx_dagster.defs.partitions import session_key
from spx_dagster_tests.scale.services import REPO, tail

FETCH_STEP = "__".join(RAW.path)
STEP_END = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


def submit_backfill(env: Mapping[str, str], keys: list[str]) -> dict:
    """Submit the backfill from a subprocess with the daemon's environment (see the module)."""
    done = subprocess.run(
        [sys.executable, "-m", "spx_dagster_tests.scale.submit_backfill", *keys],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for_runs(
    instance: dg.DagsterInstance,
    backfill_id: str,
    count: int,
    *,
    timeout_s: float,
    daemon_log: Path,
    daemon: subprocess.Popen,
) -> list[dg.RunRecord]:
    """The backfill's runs once ``count`` of them have finished (success or not)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
        finished = [r for r in records if r.dagster_run.is_finished]
        if len(finished) >= count and len(finished) == len(records):
            return finished
        if daemon.poll() is not None:
            raise AssertionError(f"dagster-daemon exited ({daemon.returncode}): {tail(daemon_log)}")
        if time.monotonic() > deadline:
            states = sorted(str(r.dagster_run.status.value) for r in records)
            raise AssertionError(
                f"{len(finished)}/{count} runs of backfill {backfill_id} finished after "
                f"{timeout_s:.0f}s (states: {states}); daemon log:\n{tail(daemon_log)}"
            )
        time.sleep(1.0)


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start on ties)."""
    points = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda p: (p[0], p[1]),
    )
    open_now = peak = 0
    for _, delta in points:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def run_intervals(records: Iterable[dg.RunRecord]) -> list[tuple[float, float]]:
    return [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]


def step_intervals(
    instance: dg.DagsterInstance, run_ids: Iterable[str], step_key: str = FETCH_STEP
) -> list[tuple[float, float]]:
    """[start, end] of ``step_key`` in each run, from the STEP_START/SUCCESS/FAILURE events."""
    intervals = []
    for run_id in run_ids:
        start = end = None
        for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, *STEP_END}):
            if entry.step_key != step_key:
                continue
            if entry.dagster_event.event_type == DagsterEventType.STEP_START:
                start = entry.timestamp if start is None else min(start, entry.timestamp)
            else:
                end = entry.timestamp if end is None else max(end, entry.timestamp)
        if start is not None and end is not None:
            intervals.append((start, end))
    return intervals


@dataclass(frozen=True)
class Published:
    complete: set[dt.date]
    verified: set[dt.date]
    gaps: set[str]


def published_state(
    instance: dg.DagsterInstance, output_dir: Path, start: dt.date, end: dt.date
) -> Published:
    """Manifests, verification and gaps (sessions in range minus materialized partitions)."""
    sessions = calendar.sessions_between(start, end)
    complete = {
        day
        for day in sessions
        if (manifest := load_manifest(output_dir, day)) is not None
        and manifest.status == "complete"
    }
    verified = {day for day in sessions if verify_session(output_dir, day).ok}
    materialized = instance.get_materialized_partitions(PARQUET)
    gaps = {session_key(day) for day in sessions} - set(materialized)
    return Published(complete=complete, verified=verified, gaps=gaps)
