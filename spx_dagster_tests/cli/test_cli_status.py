"""``spx-data status``: health checks against the real simulator, instance and files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from spx_dagster.simulator import FaultRule
from spx_dagster_tests.cli.reading_history import (
    FAILED,
    history,  # noqa: F401  (fixture)
    invoke,
    pipeline_env,
)

REPO = Path(__file__).resolve().parents[2]
CHECKS = {"terminal", "instance", "daemon", "disk", "memory", "catalog"}


def test_status_json_reports_every_check(history) -> None:  # noqa: F811
    result = invoke("status", "--json")
    document = json.loads(result.stdout)
    assert set(document["checks"]) == CHECKS
    checks = document["checks"]
    terminal = checks["terminal"]
    assert terminal["level"] == "ok" and terminal["details"]["state"] == "ready"
    assert terminal["details"]["url"] == history.base_url
    assert checks["instance"]["details"]["dagster_home"] == str(history.dagster_home)
    assert checks["instance"]["details"]["storage"] == "sqlite"
    assert checks["instance"]["details"]["runs"] == 5
    # No daemon in this test: a warning that says how to start one, not an error.
    assert (
        checks["daemon"]["level"] == "warning" and "spx-data serve" in checks["daemon"]["summary"]
    )
    assert checks["daemon"]["details"]["running"] is False
    disk = checks["disk"]["details"]
    assert disk["output_dir"]["path"] == str(history.output_dir) and disk["min_free_gb"] == 0
    assert checks["memory"]["details"]["total_bytes"] > 0
    # The session job does not build the catalog (its own asset does): not there yet.
    assert checks["catalog"]["details"]["exists"] is False
    assert document["status"] == "warning" and result.exit_code == 0
    assert document["published_sessions"] == 4
    last = document["activity"]["last_run"]
    assert last["session"] == FAILED.isoformat() and last["status"] == "FAILURE"
    assert document["activity"]["last_published"]["session"] == "2024-11-07"
    assert document["error_rate"]["last_24h"] == {"runs": 5, "failed": 1, "rate": 0.2}
    assert document["runs_in_progress"] == []


def test_status_table(history) -> None:  # noqa: F811
    result = invoke("status")
    assert result.exit_code == 0
    for word in ("terminal", "ready", "daemon", "not running", "overall: warning"):
        assert word in result.stdout
    assert "error rate: last 24h 1/5 failed" in result.stdout


def test_unreachable_terminal_exits_3_naming_the_url(history, monkeypatch) -> None:  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("SPX_DATA_THETADATA__BASE_URL", url)
    result = invoke("status", "--json")
    assert result.exit_code == 3
    terminal = json.loads(result.stdout)["checks"]["terminal"]
    assert terminal["details"]["state"] == "unreachable" and url in terminal["summary"]


def test_disconnected_terminal_is_an_error(history, tiny_simulator) -> None:  # noqa: F811
    tiny_simulator.set_connected(False)
    try:
        result = invoke("status", "--json")
    finally:
        tiny_simulator.set_connected(True)
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["checks"]["terminal"]["details"]["state"] == "disconnected"
    assert document["status"] == "error"


def test_watch_json_prints_one_document_per_refresh(history) -> None:  # noqa: F811
    started = time.monotonic()
    result = invoke("status", "--watch", "--json", "--count", "3", "--interval", "0.2")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    stamps = [json.loads(line)["checked_at"] for line in lines]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert time.monotonic() - started >= 0.4


def test_runs_in_progress_show_live_progress(pipeline_home, tiny_simulator) -> None:
    """A real run in another process, slowed by the simulator, seen with its progress."""
    day = "2024-11-04"
    tiny_simulator.add_fault(FaultRule(kind="latency", seconds=0.4, date=day))
    env = {**os.environ, **pipeline_env(pipeline_home.home, pipeline_home.base_url)}
    code = (
        "import datetime as dt\n"
        "from spx_dagster_tests.cli.reading_history import run_session\n"
        f"assert run_session(dt.date.fromisoformat('{day}')).success\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO)
    try:
        seen = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            document = json.loads(invoke("status", "--json").stdout)
            running = [r for r in document["runs_in_progress"] if r.get("progress")]
            if running and running[0]["progress"]["total"]:
                seen = running[0]
                break
            time.sleep(0.3)
        assert seen is not None, "the run never showed progress"
        assert seen["session"] == day and seen["status"] == "STARTED"
        assert seen["job"] == "spx_session_job"
        progress = seen["progress"]
        assert progress["stage"] and 0 <= progress["done"] <= progress["total"]
        assert progress["rss_bytes"] > 0
        table = invoke("status").stdout
        assert "Runs in progress" in table and day in table
    finally:
        assert worker.wait(timeout=120) == 0
    document = json.loads(invoke("status", "--json").stdout)
    assert document["runs_in_progress"] == []
    assert document["activity"]["last_run"]["status"] == "SUCCESS"


def test_ctrl_c_ends_a_watch_normally(history) -> None:  # noqa: F811
    """Ctrl-C is how a watch ends, so it exits 0 (not 130: no work was interrupted)."""
    watch = subprocess.Popen(
        [sys.executable, "-m", "spx_dagster.cli.main", "status", "--watch", "--json"],
        env=dict(os.environ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = watch.stdout.readline()  # the first refresh is on screen
        assert json.loads(first)["checks"]["terminal"]["details"]["state"] == "ready"
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=60) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
