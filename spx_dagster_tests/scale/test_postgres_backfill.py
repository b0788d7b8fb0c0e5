"""A 10-session backfill through a real ``dagster-daemon`` on PostgreSQL instance storage.

Real parts only: PostgreSQL from Debian's packages on loopback, the instance configured by
``deploy/postgres/dagster.yaml`` (credentials from ``SPX_DATA_PG_*``), the daemon's backfill
and run-queue loops launching run workers, the simulator over HTTP, files on disk.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from spx_dagster.core import calendar
from spx_dagster.defs.constants import THETADATA_POOL
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
from spx_dagster_tests.scale.services import dagster_daemon

pytestmark = [pytest.mark.postgres, pytest.mark.daemon, pytest.mark.slow]

START, END = dt.date(2024, 11, 4), dt.date(2024, 11, 15)
MAX_CONCURRENT_RUNS = 4
# Standard tier (4 requests) at 2 requests per fetch step: the thetadata pool admits 2 steps.
REQUESTS_PER_STEP = 2
THETADATA_STEPS = 2


@pytest.mark.timeout(1200)  # a loaded 2-core machine needs minutes for 10 runs of 4 processes
def test_a_backfill_through_the_daemon_on_postgres_publishes_every_session(
    pipeline_home, postgres, monkeypatch, tmp_path
):
    sessions = calendar.sessions_between(START, END)
    assert len(sessions) == 10
    (pipeline_home.dagster_home / "dagster.yaml").write_text(render_instance_yaml("postgres"))
    for var, value in postgres.env().items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("SPX_DATA_THETADATA__SUBSCRIPTION_TIER", "standard")
    monkeypatch.setenv("SPX_DATA_THETADATA__CONCURRENCY", str(REQUESTS_PER_STEP))
    monkeypatch.delenv("SPX_DATA_EXECUTOR", raising=False)
    env = dict(os.environ)

    started = time.monotonic()
    submitted = submit_backfill(env, [session_key(day) for day in sessions])
    assert submitted["pool_limits"][THETADATA_POOL] == THETADATA_STEPS

    with dg.DagsterInstance.get() as instance:
        # The instance really is on PostgreSQL, and the pool limit is stored there.
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        pool = instance.event_log_storage.get_concurrency_info(THETADATA_POOL)
        assert pool.slot_count == THETADATA_STEPS

        daemon_log = tmp_path / "daemon.log"
        with dagster_daemon(env, daemon_log) as daemon:
            runs = wait_for_runs(
                instance,
                submitted["backfill_id"],
                len(sessions),
                timeout_s=900,
                daemon_log=daemon_log,
                daemon=daemon,
            )
        elapsed = time.monotonic() - started

        failed = [
            (r.dagster_run.run_id, r.dagster_run.tags) for r in runs if not r.dagster_run.is_success
        ]
        assert not failed, failed
        assert {r.dagster_run.tags.get("dagster/partition") for r in runs} >= {
            session_key(d) for d in sessions
        }
        # The run queue admitted several runs at once, never more than the instance's limit.
        run_overlap = max_overlap(run_intervals(runs))
        assert 1 < run_overlap <= MAX_CONCURRENT_RUNS
        # Fetch steps of different runs never held more ThetaData requests than the tier allows.
        fetch_overlap = max_overlap(step_intervals(instance, [r.dagster_run.run_id for r in runs]))
        assert 1 <= fetch_overlap <= THETADATA_STEPS

        state = published_state(instance, pipeline_home.output_dir, START, END)
        assert state.complete == set(sessions)
        assert state.verified == set(sessions)
        assert state.gaps == set()
        backfill = instance.get_backfill(submitted["backfill_id"])
        assert backfill.status not in (BulkActionStatus.FAILED, BulkActionStatus.CANCELED)
    run_seconds = [end - start for start, end in run_intervals(runs)]
    print(
        f"\npostgres backfill: {len(sessions)} sessions in {elapsed:.1f}s (runs "
        f"{min(run_seconds):.1f}-{max(run_seconds):.1f}s each), {run_overlap} runs at once, "
        f"{fetch_overlap} fetch steps at once"
    )
