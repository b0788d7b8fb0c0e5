"""One state per session, against a real Dagster instance and real files (issue 11, observed on
43668ef): `list` and `gaps` see a deleted or truncated file at once, sessions a resumed backfill
will still run are in progress, a paused backfill's sessions are canceled rather than failed, and
`backfill status` stops its clock when the backfill ends."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import dagster as dg
from click.testing import CliRunner
from dagster._core.execution.backfill import BulkActionStatus

from spx_dagster.cli.main import cli
from spx_dagster.core.config import load_settings
from spx_dagster.core.history import SessionState
from spx_dagster.defs.constants import PARTITION_TAG, SESSION_JOB
from spx_dagster.defs.session_state import session_snapshot
from spx_dagster.ops import backfills
from spx_dagster.ops.instance import open_instance
from spx_dagster_tests.defs.synthetic_history import publish_synthetic, synthetic_manifest

MON, TUE, WED = (dt.date(2024, 3, d) for d in (11, 12, 13))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def listed_states(*args: str) -> dict[str, str]:
    result = invoke("list", "--from", MON.isoformat(), "--to", WED.isoformat(), "--json", *args)
    assert result.exit_code == 0, result.output
    return {s["session"]: s["state"] for s in json.loads(result.stdout)["sessions"]}


def test_a_deleted_or_truncated_file_shows_as_corrupt_before_verify(pipeline_home):
    settings = load_settings()
    output = Path(settings.storage.output_dir)
    manifests = {day: synthetic_manifest(day, i) for i, day in enumerate((MON, TUE, WED))}
    for manifest in manifests.values():
        publish_synthetic(output, manifest)
    assert set(listed_states().values()) == {"complete"}
    (output / manifests[MON].files[0].path).unlink()
    truncated = output / manifests[TUE].files[1].path
    with open(truncated, "r+b") as handle:
        handle.truncate(10)
    assert listed_states() == {
        MON.isoformat(): "corrupt",
        TUE.isoformat(): "corrupt",
        WED.isoformat(): "complete",
    }
    gaps = invoke("gaps", "--from", MON.isoformat(), "--to", WED.isoformat(), "--json")
    kinds = {g["session"]: g["kind"] for g in json.loads(gaps.stdout)["sessions"]}
    assert kinds == {MON.isoformat(): "corrupt", TUE.isoformat(): "corrupt"}


def _canceled_run(instance: dg.DagsterInstance, day: dt.date) -> None:
    instance.add_run(
        dg.DagsterRun(
            job_name=SESSION_JOB,
            run_id=f"paused-{day}",
            status=dg.DagsterRunStatus.CANCELED,
            tags={PARTITION_TAG: day.isoformat(), "spx/error_category": "unknown"},
        )
    )


def test_paused_sessions_are_canceled_and_a_resumed_backfill_shows_them_running(pipeline_home):
    settings = load_settings()
    instance = open_instance()
    for day in (MON, TUE):
        _canceled_run(instance, day)
    states = {d: r.state for d, r in session_snapshot(instance, settings, MON, WED).records.items()}
    assert states[MON] is SessionState.CANCELED and states[TUE] is SessionState.CANCELED
    errors = json.loads(invoke("errors", "--json").stdout)
    assert errors["failures"] == 0 and errors["unresolved_sessions"] == []

    backfills.submit_backfill(instance, [MON, TUE], tags={}, title="resume of a paused backfill")
    assert listed_states() == {MON.isoformat(): "in_progress", TUE.isoformat(): "in_progress"}


def test_backfill_status_stops_its_clock_when_the_backfill_ends(pipeline_home):
    instance = open_instance()
    backfill_id = backfills.submit_backfill(instance, [MON], tags={}, title="one session")
    backfill = instance.get_backfill(backfill_id)
    ended = backfill.backfill_timestamp + 42.0
    instance.update_backfill(
        backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS).with_end_timestamp(ended)
    )
    first = json.loads(invoke("backfill", "status", backfill_id, "--json").stdout)
    time.sleep(1.1)
    second = json.loads(invoke("backfill", "status", backfill_id, "--json").stdout)
    assert first["elapsed_s"] == second["elapsed_s"] == 42.0


def test_retry_refuses_a_date_with_all_failed(pipeline_home):
    result = invoke("retry", "2024-03-15", "--all-failed")
    assert result.exit_code == 2
    assert "--all-failed" in result.stderr and "2024-03-15" in result.stderr


def test_status_error_rates_leave_out_pauses_and_refusals(pipeline_home):
    """On 43668ef a `backfill pause` lifted the 24 h error rate (25 % in the report)."""
    instance = open_instance()
    _canceled_run(instance, MON)
    for run_id, status, category in (
        ("ok", dg.DagsterRunStatus.SUCCESS, None),
        ("refused", dg.DagsterRunStatus.FAILURE, "not_closed"),
        ("failed", dg.DagsterRunStatus.FAILURE, "permission"),
    ):
        tags = {PARTITION_TAG: TUE.isoformat()}
        if category:
            tags["spx/error_category"] = category
        instance.add_run(
            dg.DagsterRun(job_name=SESSION_JOB, run_id=run_id, status=status, tags=tags)
        )
    document = json.loads(invoke("status", "--json").stdout)
    assert document["error_rate"]["last_24h"] == {"runs": 2, "failed": 1, "rate": 0.5}
