"""`spx-data process`: real simulator over HTTP, real instance in a tmp DAGSTER_HOME."""

from __future__ import annotations

import datetime as dt
import json
import socket

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from spx_dagster.cli.main import cli
from spx_dagster.core import calendar
from spx_dagster.core.storage import find_tmp_leftovers, load_manifest, verify_session
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    FORCED_TAG,
    SCHEMA_CHECK,
    SESSION_JOB,
    TRIGGER_TAG,
)
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 4)
# A trading session a month from now: valid on the calendar, not closed yet.
FUTURE_SESSION = calendar.next_session(dt.date.today() + dt.timedelta(days=30)).isoformat()


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def session_runs(day: dt.date = SESSION) -> list[dg.DagsterRun]:
    instance = dg.DagsterInstance.get()
    records = instance.get_run_records(
        dg.RunsFilter(job_name=SESSION_JOB, tags={"dagster/partition": day.isoformat()})
    )
    return [r.dagster_run for r in records]


def check_status(check_key, day: dt.date = SESSION):
    instance = dg.DagsterInstance.get()
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key])
    return {i.partition_key: i.latest_execution_status for i in infos}.get(day.isoformat())


def test_process_publishes_checks_and_catalogs_then_skips_then_forces(pipeline_home):
    result = invoke("process", SESSION.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "success"
    manifest = load_manifest(pipeline_home.output_dir, SESSION)
    assert manifest is not None and manifest.status == "complete"
    assert document["rows"] == manifest.rows > 0
    assert document["files"] == len(manifest.files)
    assert verify_session(pipeline_home.output_dir, SESSION).ok

    runs = session_runs()
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
    assert runs[0].run_id == document["run_id"]
    assert runs[0].tags[TRIGGER_TAG] == "cli" and FORCED_TAG not in runs[0].tags
    succeeded = AssetCheckExecutionRecordStatus.SUCCEEDED
    assert check_status(SCHEMA_CHECK) == succeeded
    assert check_status(CHECKSUM_CHECK) == succeeded

    with duckdb.connect(str(pipeline_home.home / "catalog.duckdb"), read_only=True) as con:
        sessions = [r[0] for r in con.execute("SELECT session FROM sessions").fetchall()]
    assert sessions == [SESSION]
    assert document["catalog"]["refreshed"] is True

    again = invoke("process", SESSION.isoformat())
    assert again.exit_code == 0
    assert "already complete" in again.stdout
    assert len(session_runs()) == 1  # nothing was fetched again

    forced = invoke("process", SESSION.isoformat(), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    second = load_manifest(pipeline_home.output_dir, SESSION)
    assert second.created_at > manifest.created_at
    runs = session_runs()
    assert len(runs) == 2
    forced_run = next(r for r in runs if r.run_id == json.loads(forced.stdout)["run_id"])
    assert forced_run.tags[FORCED_TAG] == "true"
    # The re-run replaced the session: only the files the new manifest lists are on disk.
    for dataset, entry in second.datasets.items():
        directory = OutputLayout.of(pipeline_home.output_dir).dataset_session_dir(dataset, SESSION)
        listed = {f.path.rsplit("/", 1)[-1] for f in entry.files}
        listed |= {name + ".sha256" for name in listed}
        assert {p.name for p in directory.iterdir()} == listed
    assert verify_session(pipeline_home.output_dir, SESSION).ok
    assert find_tmp_leftovers(pipeline_home.output_dir) == []


@pytest.mark.parametrize(
    ("date", "why", "nearest"),
    [
        ("2024-11-02", "Saturday", "2024-11-01 or 2024-11-04"),
        ("2024-11-28", "holiday", "2024-11-27 or 2024-11-29"),
        (FUTURE_SESSION, "has not closed yet", "latest closed session"),
        ("2023-12-29", "before the earliest processable date", "2024-01-02"),
    ],
)
def test_process_refuses_dates_that_are_not_closed_sessions(pipeline_home, date, why, nearest):
    result = invoke("process", date)
    assert result.exit_code == 2
    assert why in result.stderr and nearest in result.stderr
    assert result.stdout == ""
    assert not pipeline_home.output_dir.exists() or not any(pipeline_home.output_dir.iterdir())


def test_process_names_the_url_when_the_terminal_is_unreachable(pipeline_home, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("SPX_DATA_THETADATA__BASE_URL", url)
    result = invoke("process", SESSION.isoformat())
    assert result.exit_code == 3
    assert url in result.stderr
    assert "spx-data simulator" in result.stderr and "ThetaTerminal" in result.stderr
    assert session_runs() == []


def test_process_reports_a_permanent_failure_with_its_category(pipeline_home, tiny_simulator):
    tiny_simulator.add_fault(FaultRule(kind="status", status=471, date=SESSION))
    result = invoke("process", SESSION.isoformat())
    assert result.exit_code == 1
    assert "(permission)" in result.stderr
    assert "spx/raw_option_chains" in result.stderr
    assert "what to try" in result.stderr and "subscription" in result.stderr
    runs = session_runs()
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.FAILURE
    assert runs[0].tags[ERROR_CATEGORY_TAG] == "permission"
    assert load_manifest(pipeline_home.output_dir, SESSION) is None


@pytest.mark.parametrize(
    "command",
    [
        ["process"],
        ["backfill"],
        ["backfill", "list"],
        ["backfill", "status"],
        ["backfill", "pause"],
        ["backfill", "resume"],
        ["fill-gaps"],
        ["retry"],
        ["demo"],
    ],
)
def test_every_command_has_help_with_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and "spx-data " + command[0] in result.stdout
