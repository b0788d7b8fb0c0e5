"""A real ``dagster-daemon run`` fills gaps, retries a transient failure and stops at caps.

Everything is real: the repository's ``workspace.yaml`` and the rendered ``dagster.yaml`` on a
temporary ``DAGSTER_HOME``, the daemon's sensor loop and run queue, run workers in their own
processes fetching over HTTP from the simulator in this process (whose fault rules are
server-side, so adding them here affects every worker), and ``spx-data gaps`` at the end.

Three sessions: one fails transiently (474 for its first three requests: with one request at a
time and no client retries, each of the run's three step attempts meets one, so the first run
fails and the sensor's second attempt succeeds), one fails permanently (471: never retried, it
stays failed with its category), one goes through at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus

from spx_dagster.core import calendar
from spx_dagster.core.config import load_settings
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG, PARQUET, PARTITION_TAG
from spx_dagster.defs.instance_config import apply_pool_limits, render_instance_yaml
from spx_dagster.defs.partitions import session_key
from spx_dagster.defs.sensors import GAP_SENSOR_NAME, last_due_session
from spx_dagster.simulator import FaultRule, SimulatorServer

pytestmark = [pytest.mark.daemon, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEADLINE_S = 240.0  # a bound, not the expectation: ~2 min on an idle 2-core machine
RUN_KEY_TAG = "dagster/run_key"


def settings_env(home: Path, dagster_home: Path, base_url: str, start: dt.date) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPX_DATA_")}
    env.update(
        SPX_DATA_HOME=str(home),
        DAGSTER_HOME=str(dagster_home),
        SPX_DATA_THETADATA__BASE_URL=base_url,
        SPX_DATA_THETADATA__CONCURRENCY="1",
        SPX_DATA_THETADATA__REQUEST_MAX_ATTEMPTS="1",
        SPX_DATA_THETADATA__BACKOFF_MAX_S="0.05",
        SPX_DATA_STORAGE__MIN_FREE_GB="0",
        SPX_DATA_PROCESSING__START_DATE=start.isoformat(),
        SPX_DATA_RETRY__MAX_ATTEMPTS="3",
        # The tiny chain lists Fridays and monthlies only: not the real listing rules, whose
        # coverage would make every published session `incomplete` (a revisit, not a gap).
        SPX_DATA_QUALITY__LISTING_RULES="false",
    )
    return env


def runs_by_session(instance) -> dict[str, list[dg.DagsterRun]]:
    out: dict[str, list[dg.DagsterRun]] = {}
    for record in instance.get_run_records(ascending=True):
        key = record.dagster_run.tags.get(PARTITION_TAG)
        if key:
            out.setdefault(key, []).append(record.dagster_run)
    return out


def gap_sensor_ticks(instance):
    states = [s for s in instance.all_instigator_state() if s.name == GAP_SENSOR_NAME]
    assert len(states) == 1, "the gap sensor was not started"
    state = states[0]
    return instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=50)


def settled(instance, keys: list[str], permanent: str) -> tuple[bool, str]:
    """Whether every session but ``permanent`` is published, ``permanent`` failed with its
    category, nothing runs, and the gap sensor has evaluated that state and requested nothing."""
    published = instance.get_materialized_partitions(PARQUET)
    runs = runs_by_session(instance)
    waiting = [k for k in keys if k != permanent and k not in published]
    failed = [r for r in runs.get(permanent, []) if r.status == dg.DagsterRunStatus.FAILURE]
    active = [r for rs in runs.values() for r in rs if not r.is_finished]
    if waiting or not failed or active:
        return (
            False,
            f"waiting for {waiting}, permanent failed: {bool(failed)}, active {len(active)}",
        )
    last_end = max(
        rec.end_time or 0 for rec in instance.get_run_records() if rec.dagster_run.is_finished
    )
    after = [t for t in gap_sensor_ticks(instance) if t.timestamp > last_end]
    if not any(t.status == TickStatus.SKIPPED for t in after):
        return False, "waiting for a gap sensor tick after the last run"
    return True, "settled"


def dagster_cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_daemon_fills_gaps_retries_transient_failures_and_stops_at_caps(tmp_path, monkeypatch):
    started = time.monotonic()
    due = last_due_session(calendar.now_et())
    sessions = calendar.sessions_between(due - dt.timedelta(days=14), due)[-3:]
    keys = [session_key(d) for d in sessions]
    ok, transient, permanent = keys
    home, dagster_home = tmp_path / "spx", tmp_path / "spx" / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(render_instance_yaml())
    daemon_log = tmp_path / "daemon.log"
    workspace = ["-w", str(REPO / "workspace.yaml")]

    with SimulatorServer(port=0, profile="fast", chain="tiny", seed=0) as sim:
        sim.add_fault(FaultRule(kind="status", status=474, date=sessions[1], times=3))
        sim.add_fault(FaultRule(kind="status", status=471, date=sessions[2]))
        env = settings_env(home, dagster_home, sim.base_url, sessions[0])
        for name, value in env.items():
            if name.startswith(("SPX_", "DAGSTER_")):
                monkeypatch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            limits = apply_pool_limits(instance, load_settings())  # what `spx-data serve` does
            assert limits["thetadata"] == 4
            # Before the daemon starts (it writes sensor states too, and a switch racing it is
            # refused): turn the gap sensor on, and the catalog refresh off (its runs would only
            # compete for the two CPUs of a CI machine).
            for args in (("start", GAP_SENSOR_NAME), ("stop", "spx_catalog_refresh")):
                switch = dagster_cli("sensor", *args, *workspace, env=env)
                output, _ = switch.communicate(timeout=120)
                assert switch.returncode == 0, output
            with daemon_log.open("w") as log:
                daemon = subprocess.Popen(
                    [str(BIN / "dagster-daemon"), "run", *workspace],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    status = "not started"
                    while time.monotonic() - started < DEADLINE_S:
                        done, status = settled(instance, keys, permanent)
                        if done:
                            break
                        assert daemon.poll() is None, daemon_log.read_text()[-3000:]
                        time.sleep(1)
                    else:
                        pytest.fail(
                            f"not settled in {DEADLINE_S:.0f} s: {status}\n"
                            + daemon_log.read_text()[-4000:]
                        )
                finally:
                    daemon.send_signal(signal.SIGINT)
                    try:
                        daemon.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        daemon.kill()
                        daemon.wait()
            elapsed = time.monotonic() - started
            runs = runs_by_session(instance)
            stats = sim.stats()

        # The transient session: one failed run (its three step attempts met the three 474s),
        # then the sensor's second attempt, which succeeded.
        t_runs = runs[transient]
        assert [r.status for r in t_runs] == [
            dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.SUCCESS,
        ]
        assert t_runs[0].tags[ERROR_CATEGORY_TAG] == "disconnected"
        assert [r.tags[RUN_KEY_TAG] for r in t_runs] == [
            f"gap-{transient}-a1",
            f"gap-{transient}-a2",
        ]
        # The permanent one: asked once, never again.
        p_runs = runs[permanent]
        assert len(p_runs) == 1 and p_runs[0].tags[ERROR_CATEGORY_TAG] == "permission"
        # The other: one run.
        assert [r.status for r in runs[ok]] == [dg.DagsterRunStatus.SUCCESS]
        assert runs[ok][0].tags[RUN_KEY_TAG] == f"gap-{ok}-a1"
        statuses = {str(code): count for code, count in stats["by_status"].items()}
        assert statuses.get("474") == 3

        gaps = subprocess.run(
            [str(BIN / "spx-data"), "gaps", "--to", keys[-1], "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert gaps.returncode == 0, gaps.stderr
        document = json.loads(gaps.stdout)
        assert document["expected_sessions"] == len(keys)
        assert [(g["session"], g["kind"], g["error_category"]) for g in document["sessions"]] == [
            (permanent, "failed", "permission")
        ]
        assert document["sessions"][0]["retryable"] is False
        print(f"daemon test settled in {elapsed:.1f} s (ticks, runs, retries included)")
