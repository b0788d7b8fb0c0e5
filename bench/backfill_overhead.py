"""Benchmark 5: orchestration seconds per session of a backfill through the real daemon.

A temporary home (SQLite instance on disk, the repository's ``dagster.yaml``) points at a
simulator with the ``tiny`` chain, so the data work of a session is small and what is left is
orchestration. ``dagster-daemon run`` is started on it, then ``spx-data backfill FROM TO --wait
--json`` runs as a user would type it and is timed from start to exit. Separately, the same kind
of session is processed in process by the plain stages (``pipeline_run.run_stages``, no
Dagster), several times; the median is the processing time.

overhead per session = wall / sessions - in-process processing time per session

Also reported from the instance, to show where the time goes: submission to the first run
(the backfill daemon's 30 s loop), each run's creation to start (queue, dequeued every 5 s, and
the launch of a run worker process), start to end (the run itself), the most runs that ran at
once (the ``thetadata`` pool admits tier limit // concurrency fetch steps: 1 on Standard, and
the run queue holds a run back while its fetch step could not get a slot) and the last run's
end to the CLI's exit (the daemon marking the backfill complete on its next loop).

No target in issue #7; ``met`` is null.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    REPO,
    median,
    pipeline_env,
    progress,
    run_child,
    simulator,
    temp_home,
)

NAME = "backfill_overhead"
FIRST_SESSION = dt.date(2024, 9, 3)
IN_PROCESS_SAMPLES = 5
DAEMON_START_TIMEOUT_S = 120
BACKFILL_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Size:
    sessions: int


FULL = Size(50)
QUICK = Size(5)


def process_sessions(sessions: list[str]) -> list[float]:
    """Seconds of each session through the plain stages, in this one process."""
    from bench.pipeline_run import run_stages

    return [run_stages(day)["total_s"] for day in sessions]


def _sessions(count: int) -> list[dt.date]:
    from spx_dagster.core import calendar

    days = calendar.sessions_between(FIRST_SESSION, FIRST_SESSION + dt.timedelta(days=count * 2))
    return days[:count]


def _start_daemon(home: Path, env: dict[str, str], log: Path):
    import dagster as dg

    from spx_dagster.ops import backfills

    # Create every SQLite database of the instance before the daemon and the CLI open it: two
    # processes creating the schedule database at once can leave it with two alembic heads.
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    daemon = str(Path(sys.executable).with_name("dagster-daemon"))
    with log.open("w") as out:
        process = subprocess.Popen(
            [daemon, "run", "-m", "spx_dagster.definitions"],
            env={**os.environ, **env},
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
    while not backfills.daemon_running(instance):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"dagster-daemon did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return process, instance


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _timeline(instance, backfill_id: str, run_ids: list[str], exited_at: float) -> dict:
    """Where the wall time went, from the instance's records (wall-clock timestamps)."""
    import dagster as dg

    from spx_dagster.defs.constants import THETADATA_POOL

    submitted = instance.get_backfill(backfill_id).backfill_timestamp
    records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
    created = [r.create_timestamp.timestamp() for r in records]
    queued = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
    running = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
    ends = [r.end_time for r in records if r.end_time]
    return {
        "runs": len(records),
        "max_runs_at_once": _max_overlap(
            [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]
        ),
        "thetadata_pool_slots": instance.event_log_storage.get_concurrency_info(
            THETADATA_POOL
        ).slot_count,
        "submit_to_first_run_s": round(min(created) - submitted, 1) if created else None,
        "median_create_to_start_s": round(median(queued), 2),
        "median_start_to_end_s": round(median(running), 2),
        "last_run_end_to_cli_exit_s": round(exited_at - max(ends), 1) if ends else None,
        "runs_span_s": round(max(ends) - min(r.start_time for r in records if r.start_time), 1)
        if ends
        else None,
    }


def run(quick: bool, shared: dict) -> tuple[dict, None, None]:
    from spx_dagster.defs.instance_config import BACKFILL_RUN_LIMIT, render_instance_yaml

    size = QUICK if quick else FULL
    days = _sessions(size.sessions)
    with simulator(chain="tiny") as sim, temp_home(NAME) as home:
        env = pipeline_env(home, sim.base_url, processing__start_date=days[0].isoformat())
        samples = [d.isoformat() for d in days[:IN_PROCESS_SAMPLES]]
        progress(f"{NAME}: {len(samples)} sessions in process (plain stages, no Dagster)")
        in_process = run_child(
            "backfill_overhead:process_sessions",
            env=pipeline_env(home / "plain", sim.base_url, processing__start_date=samples[0]),
            sessions=samples,
        ).value
        per_session = median(in_process)

        dagster_home = Path(env["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text(render_instance_yaml())
        progress(f"{NAME}: starting dagster-daemon")
        daemon, instance = _start_daemon(home, env, home / "daemon.log")
        try:
            progress(
                f"{NAME}: spx-data backfill {days[0]} {days[-1]} --wait ({len(days)} sessions)"
            )
            started = time.monotonic()
            done = subprocess.run(
                [
                    str(Path(sys.executable).with_name("spx-data")),
                    "backfill",
                    days[0].isoformat(),
                    days[-1].isoformat(),
                    "--wait",
                    "--json",
                ],
                env={**os.environ, **env},
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=BACKFILL_TIMEOUT_S,
            )
            wall, exited_at = time.monotonic() - started, time.time()
            if done.returncode != 0:
                raise RuntimeError(
                    f"spx-data backfill exited with {done.returncode}:\n{done.stderr[-3000:]}"
                )
            outcome = json.loads(done.stdout)
            runs = _timeline(
                instance, outcome["backfill_id"], list(outcome["run_ids"].values()), exited_at
            )
        finally:
            _stop(daemon)
    sessions_done = outcome["done"]
    return (
        {
            "sessions": len(days),
            "sessions_done": sessions_done,
            "chain": "tiny",
            "first": days[0].isoformat(),
            "last": days[-1].isoformat(),
            "backfill_runs_at_once": BACKFILL_RUN_LIMIT,
            "wall_s": round(wall, 1),
            "wall_per_session_s": round(wall / len(days), 2),
            "in_process_per_session_s": round(per_session, 3),
            "in_process_samples_s": [round(s, 3) for s in in_process],
            "overhead_per_session_s": round(wall / len(days) - per_session, 2),
            **runs,
        },
        None,
        None,
    )
