"""``spx-data retry``: attempt history, the max_attempts refusal, --force and strategies."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.storage import load_manifest
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG, FORCED_TAG, SESSION_JOB, TRIGGER_TAG
from spx_dagster.ops import runs
from spx_dagster.ops.instance import open_instance
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 7)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def session_runs(day: dt.date = SESSION) -> list[dg.DagsterRun]:
    records = dg.DagsterInstance.get().get_run_records(
        dg.RunsFilter(job_name=SESSION_JOB, tags={"dagster/partition": day.isoformat()})
    )
    return sorted((r.dagster_run for r in records), key=lambda r: r.run_id)


def test_retry_needs_sessions_or_all_failed(pipeline_home):
    result = invoke("retry")
    assert result.exit_code == 2
    assert "--all-failed" in result.stderr


def test_retry_refuses_past_max_attempts_until_forced(pipeline_home, tiny_simulator, monkeypatch):
    monkeypatch.setenv("SPX_DATA_RETRY__MAX_ATTEMPTS", "1")
    tiny_simulator.add_fault(FaultRule(kind="status", status=471, date=SESSION))
    assert invoke("process", SESSION.isoformat()).exit_code == 1

    plan = json.loads(invoke("retry", SESSION.isoformat(), "--dry-run", "--json").stdout)
    (entry,) = plan["sessions"]
    assert entry["allowed"] is False
    assert "retry.max_attempts (1)" in entry["reason"] and "--force" in entry["reason"]
    assert entry["failures_since_success"] == 1
    assert [h["error_category"] for h in entry["history"]] == ["permission"]

    refused = invoke("retry", SESSION.isoformat())
    assert refused.exit_code == 1
    assert "nothing retried" in refused.stderr and "--force" in refused.stderr
    assert len(session_runs()) == 1

    tiny_simulator.clear_faults()
    forced = invoke("retry", SESSION.isoformat(), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    (done,) = json.loads(forced.stdout)["sessions"]
    assert done["result"]["status"] == "success"
    runs = session_runs()
    assert len(runs) == 2
    latest = next(r for r in runs if r.run_id == done["result"]["run_id"])
    assert latest.tags[TRIGGER_TAG] == "retry" and latest.tags[FORCED_TAG] == "true"
    assert load_manifest(pipeline_home.output_dir, SESSION).status == "complete"

    nothing = json.loads(invoke("retry", "--all-failed", "--json").stdout)
    assert nothing["sessions"] == []


def test_an_interrupted_session_is_retried_by_resuming(pipeline_home):
    instance = open_instance()
    run = runs.SessionRun(
        instance=instance,
        session=SESSION,
        tags=runs.run_tags(trigger="cli"),
        output_dir=pipeline_home.output_dir,
    )
    run.request_stop()  # stops at the first progress point, as a Ctrl-C would
    outcome = run.start().wait()
    assert outcome.status == "interrupted"
    assert instance.get_run_by_id(outcome.run_id).tags[ERROR_CATEGORY_TAG] == "interrupted"

    plan = json.loads(invoke("retry", "--all-failed", "--dry-run", "--json").stdout)
    (entry,) = plan["sessions"]
    assert entry["session"] == SESSION.isoformat() and entry["allowed"] is True
    assert entry["last_error_category"] == "interrupted"
    assert "resume" in entry["strategy"]

    result = invoke("retry", "--all-failed")
    assert result.exit_code == 0, result.output
    assert "all published" in result.stdout
    assert load_manifest(pipeline_home.output_dir, SESSION) is not None
