"""``defs.session_state``: one record per session from the calendar, manifests and the instance."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from spx_dagster.core import calendar
from spx_dagster.core.config import load_settings
from spx_dagster.core.history import SessionState
from spx_dagster.core.storage import Problem, ProblemKind, VerifyReport
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.defs.constants import PARTITION_TAG, SESSION_JOB
from spx_dagster.defs.session_state import record_verification, session_snapshot, session_state
from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    FAILED,
    NO_DATA,
    START,
    history,  # noqa: F401  (fixture)
)
from spx_dagster_tests.defs.synthetic_history import (
    FIRST,
    build_history,
    publish_synthetic,
    synthetic_manifest,
)

REPO = Path(__file__).resolve().parents[2]
WEEK = (dt.date(2024, 11, 1), dt.date(2024, 11, 12))


def test_records_combine_calendar_manifests_and_runs(history) -> None:  # noqa: F811
    records = session_state(dg.DagsterInstance.get(), load_settings(), *WEEK)
    by_day = {r.session: r for r in records}
    assert list(by_day) == calendar.sessions_between(*WEEK)
    assert [by_day[d].state for d in COMPLETE] == [SessionState.COMPLETE] * 3
    assert by_day[NO_DATA].state is SessionState.NO_DATA
    failed = by_day[FAILED]
    assert failed.state is SessionState.FAILED and failed.last_error_category == "permission"
    assert failed.attempts == failed.failures_since_success == 1
    assert by_day[dt.date(2024, 11, 1)].state is SessionState.MISSING
    assert by_day[COMPLETE[0]].rows > 0 and by_day[COMPLETE[0]].quality is not None


def test_default_range_is_start_date_to_latest_closed_session(history) -> None:  # noqa: F811
    snapshot = session_snapshot(dg.DagsterInstance.get(), load_settings())
    assert snapshot.start == START
    assert snapshot.end == calendar.latest_closed_session()
    assert snapshot.expected == calendar.sessions_between(START, snapshot.end)


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", "2024-03-11")
    with dg.instance_for_test() as instance:
        yield instance, load_settings()


def test_unreadable_manifest_corrupt_check_and_runs_in_progress(tmp_home) -> None:
    instance, settings = tmp_home
    output = Path(settings.storage.output_dir)
    mon, tue, wed, thu = (dt.date(2024, 3, d) for d in (11, 12, 13, 14))
    for i, day in enumerate((mon, tue, wed)):
        publish_synthetic(output, synthetic_manifest(day, i))
    OutputLayout.of(output).manifest_path(tue).write_text("{ not json")
    report = VerifyReport(session=wed, status="corrupt")
    report.problems.append(Problem(ProblemKind.CHECKSUM_MISMATCH, "greeks/x.parquet", "differs"))
    record_verification(instance, report)
    # A run the queue has started for Thursday (as the run coordinator records it).
    instance.add_run(
        dg.DagsterRun(
            job_name=SESSION_JOB,
            run_id="thursday-run",
            status=dg.DagsterRunStatus.STARTED,
            tags={PARTITION_TAG: thu.isoformat()},
        )
    )
    snapshot = session_snapshot(instance, settings, mon, thu)
    states = {d: r.state for d, r in snapshot.records.items()}
    assert states == {
        mon: SessionState.COMPLETE,
        tue: SessionState.CORRUPT,  # its manifest cannot be read
        wed: SessionState.CORRUPT,  # verify found a bad file
        thu: SessionState.IN_PROGRESS,
    }
    assert snapshot.records[thu].attempts == 0  # a run in progress is not an attempt yet
    assert snapshot.volatility == {mon: pytest.approx(0.005), wed: pytest.approx(0.007)}


def _fast_tmpdir() -> str:
    # SQLite commits each recorded run; on tmpfs building 3,000 of them takes seconds, not a
    # minute. Reads are measured after the writes, from the page cache either way.
    shm = Path("/dev/shm")
    return tempfile.mkdtemp(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None)


def _cli_seconds(env: dict, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "spx_dagster.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 3), done.stderr[-2000:]  # 3: no terminal in this test
    return time.perf_counter() - started, done.stdout


@pytest.fixture
def fast_tmpdir():
    root = Path(_fast_tmpdir())
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_three_thousand_sessions_are_classified_by_every_read_command(
    monkeypatch, fast_tmpdir
) -> None:
    root = fast_tmpdir
    env = {
        "SPX_DATA_HOME": str(root / "spx"),
        "DAGSTER_HOME": str(root / "spx" / "dagster"),
        "SPX_DATA_PROCESSING__START_DATE": FIRST.isoformat(),
        "SPX_DATA_THETADATA__BASE_URL": "http://127.0.0.1:9",  # nothing listens on discard
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from spx_dagster.ops.instance import open_instance

    instance = open_instance()
    settings = load_settings()
    synthetic = build_history(instance, Path(settings.storage.output_dir))
    assert len(synthetic.published) == 3000 and synthetic.runs > 3000

    started, cpu_started = time.perf_counter(), time.process_time()
    snapshot = session_snapshot(instance, settings)  # cold: no manifest summary cached
    cold, cold_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    counts = Counter(r.state for r in snapshot.records.values())
    assert counts[SessionState.COMPLETE] == 3000
    assert counts[SessionState.FAILED] == len(synthetic.failed)
    assert counts[SessionState.MISSING] == len(synthetic.sessions) - 3000 - len(synthetic.failed)
    assert all(snapshot.records[d].attempts == 2 for d in synthetic.recovered)
    assert len(snapshot.volatility) == 3000

    full_env = {**os.environ, **env}
    gaps_s, gaps_out = _cli_seconds(full_env, "gaps", "--json")
    document = json.loads(gaps_out)
    assert document["gaps"] == len(synthetic.sessions) - 3000
    list_s, _ = _cli_seconds(full_env, "list", "--json")
    status_s, _ = _cli_seconds(full_env, "status", "--json")
    help_s, _ = _cli_seconds(full_env, "--help")
    print(
        f"\n3,000 published sessions, {synthetic.runs} runs, {len(synthetic.sessions)} sessions "
        f"{FIRST}..today: session_snapshot cold {cold:.3f} s (CPU {cold_cpu:.3f} s); gaps analysis "
        f"{document['analysis_seconds']:.3f} s; whole CLI processes: gaps {gaps_s:.2f} s, "
        f"list {list_s:.2f} s, status {status_s:.2f} s, --help {help_s:.2f} s"
    )
