"""``spx-data backfill`` with a real ``dagster-daemon run`` subprocess on a tmp instance.

The daemon launches real run workers (subprocesses) that fetch from the simulator over HTTP; the
CLI submits, follows, pauses and resumes through the same instance.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.execution.backfill import BulkActionStatus

from spx_dagster.cli.main import cli
from spx_dagster.core import calendar
from spx_dagster.core.storage import load_manifest
from spx_dagster.defs.constants import BACKFILL_TAG
from spx_dagster.defs.instance_config import render_instance_yaml
from spx_dagster.ops import backfills
from spx_dagster.simulator import FaultRule

pytestmark = [pytest.mark.daemon, pytest.mark.slow]

DAEMON = str(Path(sys.executable).with_name("dagster-daemon"))
# Per-backfill run limits for `--concurrency N` (see backfills.BACKFILL_RUNS_TAG_PREFIX), added to
# the instance's dagster.yaml when the rendered one does not have them yet.
CONCURRENCY_RULES = "".join(
    f"      - key: {backfills.BACKFILL_RUNS_TAG_PREFIX}{n}\n"
    f"        limit: {n}\n"
    "        value:\n"
    "          applyLimitPerUniqueValue: true\n"
    for n in (1, 2, 3)
)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _instance_yaml() -> str:
    text = render_instance_yaml()
    if backfills.BACKFILL_RUNS_TAG_PREFIX in text:
        return text
    anchor = "    tag_concurrency_limits:\n"
    assert anchor in text
    return text.replace(anchor, anchor + CONCURRENCY_RULES, 1)


@pytest.fixture
def daemon(pipeline_home, tmp_path):
    (pipeline_home.dagster_home / "dagster.yaml").write_text(_instance_yaml())
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        [DAEMON, "run", "-m", "spx_dagster.definitions"],
        env=dict(os.environ),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    instance = dg.DagsterInstance.get()
    deadline = time.monotonic() + 90
    while not backfills.daemon_running(instance) and time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        time.sleep(0.5)
    assert backfills.daemon_running(instance), (tmp_path / "daemon.log").read_text()[-3000:]
    yield instance
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_backfill_with_one_failing_session_publishes_the_others(
    pipeline_home, tiny_simulator, daemon
):
    """Issue #5: 10 sessions through a real daemon, one failing; gaps names it; retry fixes it."""
    failing = dt.date(2024, 11, 12)
    tiny_simulator.add_fault(FaultRule(kind="status", status=471, date=failing))
    started = time.monotonic()
    result = invoke("backfill", "2024-11-04", "2024-11-15", "--wait", "--json")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "no dagster-daemon" not in result.stderr
    progress = json.loads(result.stdout)
    assert progress["finished"] is True
    expected = [
        d.isoformat()
        for d in calendar.sessions_between(dt.date(2024, 11, 4), dt.date(2024, 11, 15))
    ]
    assert len(expected) == 10
    assert progress["sessions"]["done"] == [d for d in expected if d != failing.isoformat()]
    assert progress["sessions"]["failed"] == [failing.isoformat()]
    assert progress["failures"][failing.isoformat()]["error_category"] == "permission"
    for day in expected:
        manifest = load_manifest(pipeline_home.output_dir, dt.date.fromisoformat(day))
        if day == failing.isoformat():
            assert manifest is None
        else:
            assert manifest.status == "complete"
    print(f"backfill of 10 tiny sessions through the daemon: {elapsed:.1f} s")

    gaps = invoke("gaps", "--from", "2024-11-04", "--to", "2024-11-15", "--json")
    assert gaps.exit_code == 0, gaps.output
    found = json.loads(gaps.stdout)["sessions"]
    assert [(g["session"], g["kind"]) for g in found] == [(failing.isoformat(), "failed")]

    # A permission failure will not fix itself: retry refuses until the user says it is fixed.
    refused = invoke("retry", failing.isoformat())
    assert refused.exit_code != 0 and "--force" in refused.output
    tiny_simulator.clear_faults()
    fixed = invoke("retry", failing.isoformat(), "--force")
    assert fixed.exit_code == 0, fixed.output
    assert load_manifest(pipeline_home.output_dir, failing).status == "complete"
    after = invoke("gaps", "--from", "2024-11-04", "--to", "2024-11-15", "--json")
    assert json.loads(after.stdout)["sessions"] == []


def test_pause_cancels_what_waits_and_resume_finishes_the_rest(
    pipeline_home, tiny_simulator, daemon
):
    instance = daemon
    sessions = ["2024-11-18", "2024-11-19", "2024-11-20"]
    # Slow answers keep the first run busy while the others wait behind --concurrency 1.
    tiny_simulator.add_fault(FaultRule(kind="latency", seconds=0.3, path="/option/history"))
    submitted = invoke("backfill", sessions[0], sessions[-1], "--concurrency", "1", "--json")
    assert submitted.exit_code == 0, submitted.output
    backfill_id = json.loads(submitted.stdout)["backfill_id"]
    assert instance.get_backfill(backfill_id).tags[f"{backfills.BACKFILL_RUNS_TAG_PREFIX}1"]

    def runs():
        return [
            r.dagster_run
            for r in instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
        ]

    _wait_until(lambda: any(r.status == dg.DagsterRunStatus.STARTED for r in runs()), 120, "a run")
    started = [r for r in runs() if r.status == dg.DagsterRunStatus.STARTED]
    assert len(started) == 1, "--concurrency 1 lets one run of the backfill start at a time"

    paused = invoke("backfill", "pause", backfill_id, "--json")
    assert paused.exit_code == 0, paused.output
    _wait_until(
        lambda: instance.get_backfill(backfill_id).status == BulkActionStatus.CANCELED,
        120,
        "the daemon to cancel the backfill",
    )
    assert all(r.is_finished for r in runs())
    published = {
        d for d in sessions if load_manifest(pipeline_home.output_dir, dt.date.fromisoformat(d))
    }
    assert len(published) < len(sessions)

    tiny_simulator.clear_faults()
    resumed = invoke("backfill", "resume", backfill_id, "--wait", "--json")
    assert resumed.exit_code == 0, resumed.output
    final = json.loads(resumed.stdout)
    assert sorted(final["sessions"]["done"]) == sorted(set(sessions) - published)
    for day in sessions:
        assert load_manifest(pipeline_home.output_dir, dt.date.fromisoformat(day)) is not None


def _fetch_steps(instance, run_id: str) -> tuple[float, float]:
    """When the run's fetch step started and ended (wall clock, from its event log)."""
    from dagster import DagsterEventType

    times: dict[DagsterEventType, float] = {}
    for entry in instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
    ):
        if "raw_option_chains" in (entry.step_key or ""):
            times[entry.dagster_event.event_type] = entry.timestamp
    return times[DagsterEventType.STEP_START], times[DagsterEventType.STEP_SUCCESS]


def test_the_next_run_starts_while_the_one_before_fetches(pipeline_home, tiny_simulator, daemon):
    """Issue 14: no run start-up sits between two fetches. The queue starts the next run while
    the terminal pool is full (``op_granularity_run_buffer``); it waits at its fetch step with
    its worker up, and takes the slot the moment the fetch before it ends. The pool still admits
    one fetch at a time (4 requests on the Standard tier), so the terminal never sees more."""
    instance = daemon
    # Slow answers: one session's fetch (~12 s) lasts longer than the queue's 5 s allotment to a
    # started run (Dagster counts its pool slot taken for that long) plus a worker's start.
    tiny_simulator.add_fault(FaultRule(kind="latency", seconds=5.0, path="/option/history"))
    tiny_simulator.reset_stats()
    try:
        result = invoke("backfill", "2024-11-04", "2024-11-06", "--wait", "--json")
    finally:
        tiny_simulator.clear_faults()
    assert result.exit_code == 0, result.output
    run_ids = list(json.loads(result.stdout)["run_ids"].values())
    records = sorted(
        instance.get_run_records(dg.RunsFilter(run_ids=run_ids)), key=lambda r: r.start_time
    )
    assert len(records) == 3
    fetches = [_fetch_steps(instance, r.dagster_run.run_id) for r in records]
    for after, (fetch, next_fetch) in zip(records[1:], pairwise(fetches), strict=True):
        # The next run was up (started) before the fetch ahead of it ended ...
        assert after.start_time < fetch[1], (after.start_time, fetch)
        # ... and fetched only after it: one fetch step at a time.
        assert next_fetch[0] >= fetch[1] - 0.5, (fetch, next_fetch)
    stats = tiny_simulator.stats()
    assert stats["max_concurrent_seen"] <= 4, stats
    handovers = [b[0] - a[1] for a, b in pairwise(fetches)]
    print(f"\nfetch-to-fetch handovers: {[round(h, 2) for h in handovers]} s")
