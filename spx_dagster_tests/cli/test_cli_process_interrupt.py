"""Ctrl-C during `spx-data process`: a real SIGINT to a subprocess in the middle of a fetch."""

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
from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.storage import find_tmp_leftovers, load_manifest
from spx_dagster.core.storage.layout import TempLayout
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG, RAW, SESSION_JOB
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 6)
SPX_DATA = str(Path(sys.executable).with_name("spx-data"))


def _fetching(progress_dir: Path) -> dict | None:
    """The progress file of a run that has staged at least one answer, if any."""
    for path in progress_dir.glob("*.json"):
        try:
            snap = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if snap.get("stage") == "fetch" and snap.get("done", 0) >= 1:
            return snap
    return None


def _staged_answers(temp_dir: Path) -> list[Path]:
    return [
        p
        for p in TempLayout.of(temp_dir).staging_dir(SESSION).rglob("*.json")
        if not p.name.startswith(("_", ".tmp-"))
    ]


def test_ctrl_c_stops_cleanly_keeps_staging_and_the_next_run_resumes(pipeline_home, tiny_simulator):
    # Every data request waits 0.4 s, so the fetch lasts several seconds.
    tiny_simulator.add_fault(
        FaultRule(kind="latency", seconds=0.4, date=SESSION, path="/option/history")
    )
    env = {**os.environ, "SPX_DATA_THETADATA__CONCURRENCY": "1"}
    process = subprocess.Popen(
        [SPX_DATA, "process", SESSION.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress_dir = pipeline_home.home / "progress"
    deadline = time.monotonic() + 90
    snap = None
    while snap is None and time.monotonic() < deadline and process.poll() is None:
        snap = _fetching(progress_dir)
        time.sleep(0.05)
    assert snap is not None, process.communicate(timeout=30)
    assert snap["done"] < snap["total"], "the fetch ended before the interrupt could be sent"
    interrupted_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    stop_seconds = time.monotonic() - interrupted_at

    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "resumes" in stderr
    assert stop_seconds < 15
    assert load_manifest(pipeline_home.output_dir, SESSION) is None
    assert find_tmp_leftovers(pipeline_home.output_dir) == []
    staged = _staged_answers(pipeline_home.temp_dir)
    assert staged, "answers staged before Ctrl-C must be kept for resume"

    instance = dg.DagsterInstance.get()
    runs = [
        r.dagster_run
        for r in instance.get_run_records(dg.RunsFilter(job_name=SESSION_JOB))
        if r.dagster_run.tags.get("dagster/partition") == SESSION.isoformat()
    ]
    assert len(runs) == 1
    assert runs[0].status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    assert runs[0].tags[ERROR_CATEGORY_TAG] == "interrupted"
    assert runs[0].run_id == snap["run_id"]

    # The next run resumes from the staged answers instead of fetching them again.
    tiny_simulator.clear_faults()
    resumed = CliRunner().invoke(cli, ["process", SESSION.isoformat(), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert load_manifest(pipeline_home.output_dir, SESSION) is not None
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW, asset_partitions=[SESSION.isoformat()]), limit=1
    ).records[0]
    metadata = latest.asset_materialization.metadata
    assert metadata["resumed_requests"].value >= len(staged)
