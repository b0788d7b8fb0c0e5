"""Sessions executed by two Celery workers (dagster-celery, Redis broker) through the daemon.

Real parts only: Debian's redis-server on loopback, two workers started by
``deploy/celery/start-worker.sh``, the celery executor selected by ``SPX_DATA_EXECUTOR=celery``,
a real ``dagster-daemon`` launching the runs, the simulator over HTTP, files on disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections import Counter

import dagster as dg
import psutil
import pytest
from dagster._core.events import DagsterEventType

from spx_dagster.core import calendar
from spx_dagster.defs.constants import THETADATA_POOL
from spx_dagster.defs.executors import BACKEND_ENV, BROKER_ENV, EXECUTOR_ENV
from spx_dagster.defs.instance_config import render_instance_yaml
from spx_dagster.defs.partitions import session_key
from spx_dagster_tests.scale.backfills import (
    max_overlap,
    published_state,
    run_intervals,
    step_intervals,
    submit_backfill,
    wait_for_runs,
)
from spx_dagster_tests.scale.services import celery_workers, dagster_daemon

pytestmark = [pytest.mark.celery, pytest.mark.daemon, pytest.mark.slow]

START, END = dt.date(2024, 11, 4), dt.date(2024, 11, 7)
WORKERS = ["spx-a", "spx-b"]
REQUESTS_PER_STEP = 2
THETADATA_STEPS = 2
CELERY_WORKER_KEY = "Celery worker"  # engine-event metadata dagster-celery writes per step


def celery_nodes(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The worker node names (``name@host``) dagster-celery recorded for the run's steps."""
    nodes = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        value = entry.dagster_event.event_specific_data.metadata.get(CELERY_WORKER_KEY)
        if value is not None:
            nodes.append(str(value.value))
    return nodes


def step_workers(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The ``host:pid`` each materialization of the run records as its ``worker``."""
    found = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        found.append(str(entry.asset_materialization.metadata["worker"].value))
    return found


def worker_of(pid: int, workers: dict[int, str]) -> str | None:
    """Which started worker (by its leading pid) the process ``pid`` descends from."""
    try:
        chain = [psutil.Process(pid), *psutil.Process(pid).parents()]
    except psutil.NoSuchProcess:
        return None
    for process in chain:
        if process.pid in workers:
            return workers[process.pid]
    return None


@pytest.mark.timeout(900)
def test_sessions_spread_across_two_celery_workers(pipeline_home, redis_url, monkeypatch, tmp_path):
    sessions = calendar.sessions_between(START, END)
    (pipeline_home.dagster_home / "dagster.yaml").write_text(render_instance_yaml())
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    monkeypatch.setenv(BROKER_ENV, f"{redis_url}/0")
    monkeypatch.setenv(BACKEND_ENV, f"{redis_url}/1")
    # Standard tier (4 requests) at 2 requests per step: two fetch steps at once, in total.
    monkeypatch.setenv("SPX_DATA_THETADATA__SUBSCRIPTION_TIER", "standard")
    monkeypatch.setenv("SPX_DATA_THETADATA__CONCURRENCY", str(REQUESTS_PER_STEP))
    env = dict(os.environ)

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.DagsterInstance.get())
        # Create the instance's tables once, here: the workers and the daemon open it at the
        # same moment, and concurrent first opens of an empty SQLite instance race (alembic).
        instance.get_run_records(limit=1)
        instance.event_log_storage.get_concurrency_keys()
        procs = stack.enter_context(celery_workers(WORKERS, env, tmp_path))
        leaders = {proc.pid: name for proc, name in zip(procs, WORKERS, strict=True)}
        submitted = submit_backfill(env, [session_key(day) for day in sessions])
        assert submitted["pool_limits"][THETADATA_POOL] == THETADATA_STEPS
        daemon_log = tmp_path / "daemon.log"
        with dagster_daemon(env, daemon_log) as daemon:
            runs = wait_for_runs(
                instance,
                submitted["backfill_id"],
                len(sessions),
                timeout_s=600,
                daemon_log=daemon_log,
                daemon=daemon,
            )
        elapsed = time.monotonic() - started
        run_ids = [r.dagster_run.run_id for r in runs]
        failed = [rid for rid, r in zip(run_ids, runs, strict=True) if not r.dagster_run.is_success]
        assert not failed, failed

        # Every step ran on a Celery worker, and both workers took a share.
        nodes = Counter(
            node.split("@", 1)[0] for rid in run_ids for node in celery_nodes(instance, rid)
        )
        assert sum(nodes.values()) == 3 * len(sessions), nodes
        assert set(nodes) == set(WORKERS), nodes
        # The step processes named in the materializations belong to those two workers.
        hosts_pids = [w for rid in run_ids for w in step_workers(instance, rid)]
        assert len(hosts_pids) == 3 * len(sessions)
        owners = Counter(worker_of(int(w.rsplit(":", 1)[1]), leaders) for w in hosts_pids)
        assert set(owners) == set(WORKERS), owners

        # Runs overlapped, and the thetadata pool bounded fetches across both workers.
        run_overlap = max_overlap(run_intervals(runs))
        fetch_overlap = max_overlap(step_intervals(instance, run_ids))
        assert run_overlap > 1
        assert 1 <= fetch_overlap <= THETADATA_STEPS

        state = published_state(instance, pipeline_home.output_dir, START, END)
        assert state.complete == state.verified == set(sessions)
        assert state.gaps == set()
    print(
        f"\ncelery: {len(sessions)} sessions in {elapsed:.1f}s, steps per worker {dict(nodes)}, "
        f"{run_overlap} runs at once, {fetch_overlap} fetch steps at once"
    )
