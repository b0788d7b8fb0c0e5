"""``spx-data backfill`` without a daemon: planning, submission, list/status, pause and resume.

The backfills are real Dagster asset backfills in a real instance (tmp DAGSTER_HOME); nothing
runs them here (see test_cli_backfill_daemon.py for a real daemon), which is exactly the state
a user is in before starting ``spx-data serve``.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
from click.testing import CliRunner
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import PARENT_BACKFILL_ID_TAG

from spx_dagster.cli.main import cli
from spx_dagster.defs.constants import FORCED_TAG, TRIGGER_TAG
from spx_dagster.defs.instance_config import BACKFILL_RUN_LIMIT
from spx_dagster.ops import backfills
from spx_dagster.ops.instance import open_instance

# 2024-11-04..2024-11-08 is a full trading week; 2024-11-02/03 a weekend.
WEEK = ["2024-11-04", "2024-11-05", "2024-11-06", "2024-11-07", "2024-11-08"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_reversed_range_suggests_the_right_order(pipeline_home):
    result = invoke("backfill", "2024-11-08", "2024-11-02")
    assert result.exit_code == 2
    assert "did you mean 2024-11-02 2024-11-08" in result.stderr


def test_a_range_without_sessions_is_refused(pipeline_home):
    result = invoke("backfill", "2024-11-02", "2024-11-03")
    assert result.exit_code == 2
    assert "no closed trading session" in result.stderr


def test_dry_run_lists_the_sessions_and_skips_complete_ones(pipeline_home):
    assert invoke("process", "2024-11-05").exit_code == 0
    result = invoke("backfill", "2024-11-02", "2024-11-08", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["sessions"] == [d for d in WEEK if d != "2024-11-05"]
    assert plan["skipped_complete"] == ["2024-11-05"]
    assert plan["backfill_id"] is None
    assert plan["estimate"]["basis"] == "history" and plan["estimate"]["sessions"] == 4
    assert dg.DagsterInstance.get().get_backfills() == []

    forced = json.loads(invoke("backfill", *WEEK[::4], "--dry-run", "--force", "--json").stdout)
    assert forced["sessions"] == WEEK and forced["skipped_complete"] == []


def test_submit_without_daemon_warns_then_pause_and_resume(pipeline_home):
    result = invoke("backfill", "2024-11-04", "2024-11-06", "--json")
    assert result.exit_code == 0, result.output
    assert "no dagster-daemon is running" in result.stderr and "spx-data serve" in result.stderr
    document = json.loads(result.stdout)
    backfill_id = document["backfill_id"]
    instance = dg.DagsterInstance.get()
    backfill = instance.get_backfill(backfill_id)
    assert backfill.status == BulkActionStatus.REQUESTED
    assert backfill.tags[TRIGGER_TAG] == "cli" and FORCED_TAG not in backfill.tags
    assert [d.isoformat() for d in backfills.backfill_sessions(backfill)] == WEEK[:3]

    listed = json.loads(invoke("backfill", "list", "--json").stdout)["backfills"]
    assert [b["backfill_id"] for b in listed] == [backfill_id]
    status = json.loads(invoke("backfill", "status", backfill_id, "--json").stdout)
    assert status["total"] == 3 and status["not_started"] == 3 and status["done"] == 0

    paused = invoke("backfill", "pause", backfill_id)
    assert paused.exit_code == 0
    assert f"spx-data backfill resume {backfill_id}" in paused.stdout
    assert instance.get_backfill(backfill_id).status == BulkActionStatus.CANCELING

    # One session gets published meanwhile (by `process`): resume leaves it out.
    assert invoke("process", "2024-11-05").exit_code == 0
    resumed = invoke("backfill", "resume", backfill_id, "--json")
    assert resumed.exit_code == 0, resumed.output
    new = json.loads(resumed.stdout)
    assert new["sessions"] == ["2024-11-04", "2024-11-06"]
    assert instance.get_backfill(backfill_id).status == BulkActionStatus.CANCELED
    child = instance.get_backfill(new["backfill_id"])
    assert child.tags[PARENT_BACKFILL_ID_TAG] == backfill_id
    assert child.tags[TRIGGER_TAG] == "cli"


def test_status_of_an_unknown_backfill_is_a_usage_error(pipeline_home):
    result = invoke("backfill", "status", "nosuchid")
    assert result.exit_code == 2
    assert "nosuchid" in result.stderr and "backfill list" in result.stderr


def test_concurrency_without_a_rule_for_it_says_so(pipeline_home):
    instance = open_instance()
    key, message = backfills.concurrency_tag(instance, 2)
    rules = {r.get("key") for r in backfills._tag_rules(instance)}
    if "spx/backfill_runs_2" in rules:
        assert key == "spx/backfill_runs_2" and message == ""
    else:
        assert key is None and "spx/backfill_runs_2" in message
    assert backfills.concurrency_tag(instance, 9)[0] is None
    assert f"at most {BACKFILL_RUN_LIMIT} runs" in backfills.concurrency_tag(instance, 9)[1]


def test_dates_of_the_plan_are_sessions(pipeline_home):
    plan = json.loads(invoke("backfill", "2024-11-25", "2024-12-02", "--dry-run", "--json").stdout)
    # Thanksgiving (11-28) and the weekend are not sessions; 11-29 (early close) is.
    assert plan["sessions"] == [
        "2024-11-25",
        "2024-11-26",
        "2024-11-27",
        "2024-11-29",
        "2024-12-02",
    ]
    assert all(dt.date.fromisoformat(d).weekday() < 5 for d in plan["sessions"])


def test_one_run_limit_in_help_warning_and_dry_run(pipeline_home):
    """On 43668ef `--help` said 4 runs, the warning 3, and --dry-run did not warn at all."""
    assert f"up to {BACKFILL_RUN_LIMIT} runs" in " ".join(
        invoke("backfill", "--help").output.split()
    )
    result = invoke("backfill", "2024-11-25", "2024-11-26", "--concurrency", "99", "--dry-run")
    assert result.exit_code == 0
    assert f"at most {BACKFILL_RUN_LIMIT} runs of one backfill" in result.stderr
