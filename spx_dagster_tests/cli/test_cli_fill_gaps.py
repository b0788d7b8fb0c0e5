"""``spx-data fill-gaps``: the gap analysis as a prioritised plan, and the backfills it submits."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.defs.constants import TRIGGER_TAG
from spx_dagster.ops import backfills
from spx_dagster.simulator import FaultRule

RANGE = ("--from", "2024-11-04", "--to", "2024-11-08")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plan_then_submit_prioritised_batches(pipeline_home, tiny_simulator):
    assert invoke("process", "2024-11-04").exit_code == 0
    tiny_simulator.add_fault(FaultRule(kind="status", status=471, date=dt.date(2024, 11, 5)))
    assert invoke("process", "2024-11-05").exit_code == 1
    tiny_simulator.clear_faults()

    dry = invoke("fill-gaps", *RANGE, "--batch-size", "2", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["to_fill"] == 3 and plan["by_kind"] == {"never_attempted": 3}
    # Most recent first; the first batch gets the highest dagster/priority.
    assert [b["sessions"] for b in plan["batches"]] == [
        ["2024-11-08", "2024-11-07"],
        ["2024-11-06"],
    ]
    assert [b["priority"] for b in plan["batches"]] == [2, 1]
    (left_out,) = plan["left_out"]
    assert left_out["session"] == "2024-11-05" and "permission" in left_out["left_out_because"]
    assert plan["estimate"]["basis"] == "history" and plan["estimate"]["sessions"] == 3
    assert dg.DagsterInstance.get().get_backfills() == []

    text = invoke("fill-gaps", *RANGE, "--batch-size", "2", "--dry-run")
    assert "Backfill plan" in text.stdout and "nothing submitted" in text.stderr

    submitted = invoke("fill-gaps", *RANGE, "--batch-size", "2", "--json")
    assert submitted.exit_code == 0, submitted.output
    assert "no dagster-daemon" in submitted.stderr
    batches = json.loads(submitted.stdout)["batches"]
    instance = dg.DagsterInstance.get()
    for batch in batches:
        backfill = instance.get_backfill(batch["backfill_id"])
        assert backfill.tags[TRIGGER_TAG] == "fill_gaps"
        assert backfill.tags[backfills.PRIORITY_TAG] == str(batch["priority"])
        got = [d.isoformat() for d in backfills.backfill_sessions(backfill)]
        assert got == sorted(batch["sessions"])

    # Until those backfills end, their sessions are in progress: not gaps, not planned again.
    again = json.loads(invoke("fill-gaps", *RANGE, "--dry-run", "--json").stdout)
    assert again["to_fill"] == 0
    assert {g["session"] for g in again["left_out"]} == {"2024-11-05"}
    listed = json.loads(invoke("list", "--from", RANGE[1], "--to", RANGE[3], "--json").stdout)
    states = {s["session"]: s["state"] for s in listed["sessions"]}
    assert {d for d, state in states.items() if state == "in_progress"} == {
        "2024-11-06",
        "2024-11-07",
        "2024-11-08",
    }
    assert all(
        "already in backfill" in g["left_out_because"]
        for g in again["left_out"]
        if g["session"] != "2024-11-05"
    )


def test_nothing_to_fill(pipeline_home):
    assert invoke("process", "2024-11-04").exit_code == 0
    result = invoke("fill-gaps", "--from", "2024-11-04", "--to", "2024-11-04")
    assert result.exit_code == 0
    assert "no gaps to fill" in result.stdout
