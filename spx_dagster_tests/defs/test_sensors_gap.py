"""The gap sensor against a real instance: which sessions, in which order, how many, which keys.

Published sessions are recorded as runless materializations of ``spx/options_parquet`` and
failed or queued runs as run records with the partition and category tags a real run carries:
the sensor reads nothing else (``get_materialized_partitions`` and run records), and producing a
transient failure through the pipeline costs ~30 s of step-retry delays per run. The daemon test
(``spx_dagster_tests/daemon``) drives the same sensor with real runs against the simulator.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.test_utils import create_run_for_test

from spx_dagster.core import calendar
from spx_dagster.definitions import defs
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    PARQUET,
    PARTITION_TAG,
    SESSION_ASSETS,
    SESSION_JOB,
    TRIGGER_TAG,
)
from spx_dagster.defs.partitions import session_key
from spx_dagster.defs.resources import SpxSettingsResource
from spx_dagster.defs.sensors import (
    ATTEMPT_TAG,
    GAP_BATCH_SIZE,
    GAP_KIND_TAG,
    GapCursor,
    gap_fill_sensor,
    gap_run_key,
    last_due_session,
    plan_gap_fill,
)

ET = calendar.ET
SESSION_COUNT = 12


@pytest.fixture(scope="module")
def repository():
    return defs.get_repository_def()


@pytest.fixture
def sessions(tmp_path, monkeypatch) -> list[dt.date]:
    """The last SESSION_COUNT due sessions, with processing.start_date at the first of them."""
    due = last_due_session(calendar.now_et())
    days = calendar.sessions_between(due - dt.timedelta(days=40), due)[-SESSION_COUNT:]
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", days[0].isoformat())
    monkeypatch.setenv("SPX_DATA_RETRY__MAX_ATTEMPTS", "2")
    return days


@pytest.fixture
def instance(sessions):
    with dg.instance_for_test() as inst:
        yield inst


def evaluate(repository, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=repository,
        resources={"spx_settings": SpxSettingsResource()},
    )
    return gap_fill_sensor.evaluate_tick(context)


def publish(instance, day: dt.date) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(PARQUET, partition=session_key(day))
    )


def session_run(instance, day: dt.date, status: dg.DagsterRunStatus, category: str | None = None):
    """A run of ``day`` that is in progress (``status``) or failed (``FAILURE``)."""
    tags = {PARTITION_TAG: session_key(day)}
    if category:
        tags[ERROR_CATEGORY_TAG] = category
    if status != dg.DagsterRunStatus.FAILURE:
        return create_run_for_test(instance, job_name=SESSION_JOB, status=status, tags=tags)
    run = create_run_for_test(
        instance, job_name=SESSION_JOB, status=dg.DagsterRunStatus.STARTED, tags=tags
    )
    instance.report_run_failed(run)
    return run


def requested(result) -> list[str]:
    return [r.partition_key for r in result.run_requests or []]


def test_missing_sessions_newest_first_in_a_bounded_batch(repository, instance, sessions):
    for day in sessions[3:5]:
        publish(instance, day)
    result = evaluate(repository, instance)

    missing = [d for d in sessions if d not in sessions[3:5]]
    newest_first = [session_key(d) for d in sorted(missing, reverse=True)]
    assert requested(result) == newest_first[:GAP_BATCH_SIZE]
    for request in result.run_requests:
        day = request.partition_key
        assert request.run_key == f"gap-{day}-a1"
        assert request.tags[TRIGGER_TAG] == "gap_sensor"
        assert request.tags[ATTEMPT_TAG] == "1"
        assert request.tags[GAP_KIND_TAG] == "never_attempted"
    cursor = GapCursor.from_json(result.cursor)
    assert cursor is not None and not cursor.idle
    assert f"{SESSION_COUNT} sessions {sessions[0]}..{sessions[-1]}" in cursor.summary
    assert f"{len(missing) - GAP_BATCH_SIZE} waiting" in cursor.summary


def test_a_failed_session_comes_first_with_its_attempt_in_the_run_key(
    repository, instance, sessions
):
    failed = sessions[2]
    session_run(instance, failed, dg.DagsterRunStatus.FAILURE, "disconnected")
    result = evaluate(repository, instance)
    first = result.run_requests[0]
    assert first.partition_key == session_key(failed)
    assert first.run_key == gap_run_key(failed, 2) == f"gap-{failed}-a2"
    assert first.tags[GAP_KIND_TAG] == "failed"
    assert len(result.run_requests) == GAP_BATCH_SIZE


def test_a_session_at_its_attempt_cap_is_not_requested(repository, instance, sessions):
    for day in sessions[:-2]:
        publish(instance, day)
    capped, once = sessions[-1], sessions[-2]
    for _ in range(2):  # retry.max_attempts is 2 here
        session_run(instance, capped, dg.DagsterRunStatus.FAILURE, "general")
    session_run(instance, once, dg.DagsterRunStatus.FAILURE, "general")

    result = evaluate(repository, instance)
    assert requested(result) == [session_key(once)]
    assert result.run_requests[0].run_key == f"gap-{once}-a2"
    cursor = GapCursor.from_json(result.cursor)
    assert "1 held" in cursor.summary
    assert f"{capped}: 2 failed attempts reached retry.max_attempts (2)" in cursor.summary


def test_a_permanent_failure_is_held_after_its_first_attempt(repository, instance, sessions):
    for day in sessions[:-1]:
        publish(instance, day)
    session_run(instance, sessions[-1], dg.DagsterRunStatus.FAILURE, "permission")
    result = evaluate(repository, instance)
    assert requested(result) == []
    assert "1 held" in result.skip_message and "will not fix itself" in result.skip_message
    plan = plan_gap_fill(instance, SpxSettingsResource().load(), now=calendar.now_et())
    assert "subscription" in plan.held[sessions[-1]]


def test_sessions_in_progress_are_skipped_and_count_against_the_batch(
    repository, instance, sessions
):
    running = sessions[-3:]
    for day, status in zip(running, ["STARTED", "STARTING", "NOT_STARTED"], strict=True):
        session_run(instance, day, dg.DagsterRunStatus[status])
    # An older failure of a session whose retry is queued: the queued run decides its state.
    session_run(instance, sessions[0], dg.DagsterRunStatus.FAILURE, "general")
    session_run(instance, sessions[0], dg.DagsterRunStatus.STARTED)
    result = evaluate(repository, instance)
    keys = requested(result)
    assert len(keys) == GAP_BATCH_SIZE - 4
    assert not set(keys) & {session_key(d) for d in [*running, sessions[0]]}
    assert "4 in progress" in GapCursor.from_json(result.cursor).summary


def test_a_corrupt_session_is_requested_first(repository, instance, sessions):
    for day in sessions:
        publish(instance, day)
    corrupt = sessions[0]
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=PARQUET,
            check_name=CHECKSUM_CHECK.name,
            passed=False,
            partition=session_key(corrupt),
        )
    )
    result = evaluate(repository, instance)
    assert requested(result) == [session_key(corrupt)]
    assert result.run_requests[0].tags[GAP_KIND_TAG] == "corrupt"
    assert result.run_requests[0].run_key == f"gap-{corrupt}-a1"


def test_an_idle_tick_is_not_re_evaluated_until_the_instance_changes(
    repository, instance, sessions
):
    for day in sessions:
        publish(instance, day)
    first = evaluate(repository, instance)
    assert requested(first) == [] and GapCursor.from_json(first.cursor).idle
    second = evaluate(repository, instance, cursor=first.cursor)
    assert second.skip_message.startswith("nothing changed since the last tick")
    instance.wipe_assets([PARQUET])  # every session becomes a gap again
    third = evaluate(repository, instance, cursor=second.cursor or first.cursor)
    assert len(requested(third)) == GAP_BATCH_SIZE


def test_a_running_backfill_holds_the_sensor(repository, instance, sessions):
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=uuid.uuid4().hex[:8],
        asset_graph=repository.asset_graph,
        partition_names=[session_key(sessions[-1])],
        asset_selection=list(SESSION_ASSETS),
        backfill_timestamp=time.time(),
        tags={},
        run_config=None,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
    )
    instance.add_backfill(backfill)
    result = evaluate(repository, instance)
    assert requested(result) == []
    assert f"backfill {backfill.backfill_id} is running" in result.skip_message


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (dt.datetime(2024, 3, 15, 18, 59, tzinfo=ET), dt.date(2024, 3, 14)),  # schedule's turn
        (dt.datetime(2024, 3, 15, 19, 0, tzinfo=ET), dt.date(2024, 3, 15)),
        (dt.datetime(2024, 3, 16, 12, 0, tzinfo=ET), dt.date(2024, 3, 15)),  # Saturday
        (dt.datetime(2024, 3, 18, 10, 0, tzinfo=ET), dt.date(2024, 3, 15)),  # Monday morning
        (dt.datetime(2024, 7, 4, 20, 0, tzinfo=ET), dt.date(2024, 7, 3)),  # a holiday
        (dt.datetime(2024, 3, 16, 0, 30, tzinfo=dt.UTC), dt.date(2024, 3, 15)),  # 20:30 ET
    ],
)
def test_the_sensor_leaves_the_latest_session_to_the_schedule(now, due):
    assert last_due_session(now) == due


BENCH = "spx_dagster_tests.defs.gap_sensor_bench"


@pytest.mark.slow
def test_an_evaluation_over_2012_to_today_requests_the_right_batch(tmp_path):
    """A code location whose partitions start in 2012, an instance with ~3,700 sessions of
    history (runs, materializations, failures, corrupt checks): the evaluation requests the
    prioritised batch. Its speed (target < 1 s) is measured by ``make bench``, not asserted."""
    env = {
        **os.environ,
        "SPX_DATA_HOME": str(tmp_path / "spx"),
        "SPX_DATA_PROCESSING__START_DATE": "2012-01-03",
    }
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", BENCH, str(tmp_path / "dagster")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in report.items() if k != "cursor"}, indent=1))
    assert report["first"] == "2012-01-03" and report["sessions"] > 3700
    # 3 sessions in progress leave 5 of the batch; transient failures come first, attempt 2+.
    assert len(report["requested"]) == GAP_BATCH_SIZE - 3
    assert all(key.startswith("gap-") and "-a" in key for key in report["run_keys"])
