"""``spx-data demo`` end to end in a subprocess: simulator, sessions, verification, summary."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from spx_dagster.core import calendar
from spx_dagster.core.storage import verify_session

SPX_DATA = str(Path(sys.executable).with_name("spx-data"))


@pytest.mark.slow
def test_demo_processes_verifies_and_explains(tmp_path):
    home = tmp_path / "demo-home"
    # The demo must ignore settings in the caller's environment; this one would break it.
    env = {**os.environ, "SPX_DATA_THETADATA__BASE_URL": "http://127.0.0.1:9"}
    env.pop("DAGSTER_HOME", None)
    started = time.monotonic()
    result = subprocess.run(
        [SPX_DATA, "demo", "--home", str(home), "--sessions", "2", "--chain", "tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ignoring for the demo: SPX_DATA_THETADATA__BASE_URL" in result.stderr
    sessions = calendar.latest_sessions(2)
    for day in sessions:
        assert verify_session(home / "data", day).ok
        assert day.isoformat() in result.stdout
    assert "Demo sessions" in result.stdout
    # The query the demo prints runs as printed, without a duckdb binary.
    [printed] = [line.strip() for line in result.stdout.splitlines() if " spx-data sql " in line]
    assert printed.startswith(f"SPX_DATA_HOME={home} spx-data sql ")
    query = printed.split('"', 1)[1].rsplit('"', 1)[0]
    rerun = subprocess.run(
        [SPX_DATA, "sql", query, "--format", "csv"],
        env={**os.environ, "SPX_DATA_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[0].replace('"', "") == "date,root,rows,avg_iv"
    assert len(rerun.stdout.splitlines()) >= 3
    assert str(home / "catalog.duckdb") in result.stdout
    assert f"SPX_DATA_HOME={home} spx-data serve" in result.stdout
    assert (home / "dagster" / "dagster.yaml").exists()
    with duckdb.connect(str(home / "catalog.duckdb"), read_only=True) as con:
        catalogued = sorted(r[0] for r in con.execute("SELECT session FROM sessions").fetchall())
    assert catalogued == sessions
    print(f"demo of 2 tiny sessions: {elapsed:.1f} s")
