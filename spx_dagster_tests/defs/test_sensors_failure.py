"""The failure-category sensors tag every failed or canceled run with a category.

Failing runs are real runs on a real instance (``dg.materialize`` of small assets that fail the
way a session step can: an error outside the assets' own handling, a blocking checksum check).
A killed run worker is recorded the way Dagster's code server records it (an engine event, then
``report_run_failed``; see ``dagster/_grpc/server.py``), since the in-process executor has no
worker to kill.
"""

from __future__ import annotations

import dagster as dg
import pytest

from spx_dagster.core.history import session_records
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    PARQUET,
    PARTITION_TAG,
    SESSION_JOB,
)
from spx_dagster.defs.instance_queries import run_facts
from spx_dagster.defs.partitions import SESSIONS, session_from_key
from spx_dagster.defs.sensors import canceled_category_sensor, failure_category_sensor

KEY = "2024-11-04"
CRASH_MESSAGE = "Run execution process for {run_id} unexpectedly exited with exit code -9."


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    with dg.instance_for_test() as inst:
        yield inst


class Ticks:
    """Consecutive evaluations of one run status sensor, carrying its cursor."""

    def __init__(self, sensor, instance):
        self.sensor, self.instance, self.cursor = sensor, instance, None
        self.tick()  # the first tick only sets the cursor

    def tick(self):
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor or self.cursor
        return result


def crashed_run(instance) -> dg.DagsterRun:
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(
        instance,
        job_name=SESSION_JOB,
        status=dg.DagsterRunStatus.STARTED,
        tags={PARTITION_TAG: KEY},
    )
    instance.report_engine_event(CRASH_MESSAGE.format(run_id=run.run_id), run)
    instance.report_run_failed(run)
    return run


def tags_of(instance, run_id: str) -> dict[str, str]:
    return dict(instance.get_run_by_id(run_id).tags)


def test_a_killed_worker_is_recorded_as_a_crash_and_counts_as_an_attempt(instance):
    ticks = Ticks(failure_category_sensor, instance)
    run = crashed_run(instance)
    ticks.tick()
    tags = tags_of(instance, run.run_id)
    assert tags[ERROR_CATEGORY_TAG] == "crash"
    assert "exit code -9" in tags[ERROR_MESSAGE_TAG]

    day = session_from_key(KEY)
    record = session_records([day], {}, run_facts(instance, sessions=[day]))[day]
    assert record.state.value == "failed"
    assert record.last_error_category == "crash"
    assert record.failures_since_success == 1


def test_a_step_error_without_a_category_is_unknown(instance):
    @dg.asset(key=PARQUET, partitions_def=SESSIONS)
    def broken():
        raise RuntimeError("resource could not start: config missing")

    ticks = Ticks(failure_category_sensor, instance)
    result = dg.materialize([broken], partition_key=KEY, instance=instance, raise_on_error=False)
    assert not result.success
    ticks.tick()
    tags = tags_of(instance, result.run_id)
    assert tags[ERROR_CATEGORY_TAG] == "unknown"
    assert "resource could not start" in tags[ERROR_MESSAGE_TAG]


def test_a_failed_blocking_checksum_check_is_corrupt(instance):
    @dg.asset(
        key=PARQUET,
        partitions_def=SESSIONS,
        check_specs=[dg.AssetCheckSpec(CHECKSUM_CHECK.name, asset=PARQUET, blocking=True)],
    )
    def published():
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(check_name=CHECKSUM_CHECK.name, passed=False)]
        )

    ticks = Ticks(failure_category_sensor, instance)
    result = dg.materialize([published], partition_key=KEY, instance=instance, raise_on_error=False)
    assert not result.success
    ticks.tick()
    assert tags_of(instance, result.run_id)[ERROR_CATEGORY_TAG] == "corrupt"


def test_a_category_the_run_recorded_itself_is_kept(instance):
    @dg.asset(key=PARQUET, partitions_def=SESSIONS)
    def refused(context):
        context.instance.add_run_tags(
            context.run_id, {ERROR_CATEGORY_TAG: "permission", ERROR_MESSAGE_TAG: "471"}
        )
        raise dg.Failure("permission denied", allow_retries=False)

    ticks = Ticks(failure_category_sensor, instance)
    result = dg.materialize([refused], partition_key=KEY, instance=instance, raise_on_error=False)
    ticks.tick()
    tags = tags_of(instance, result.run_id)
    assert (tags[ERROR_CATEGORY_TAG], tags[ERROR_MESSAGE_TAG]) == ("permission", "471")


def test_a_canceled_run_is_canceled_not_a_failure(instance):
    from dagster._core.test_utils import create_run_for_test

    ticks = Ticks(canceled_category_sensor, instance)
    run = create_run_for_test(
        instance,
        job_name=SESSION_JOB,
        status=dg.DagsterRunStatus.STARTED,
        tags={PARTITION_TAG: KEY},
    )
    instance.report_run_canceled(run)
    ticks.tick()
    assert tags_of(instance, run.run_id)[ERROR_CATEGORY_TAG] == "canceled"


def test_successful_runs_are_left_alone(instance):
    @dg.asset(key=PARQUET, partitions_def=SESSIONS)
    def fine():
        return None

    ticks = Ticks(failure_category_sensor, instance)
    result = dg.materialize([fine], partition_key=KEY, instance=instance)
    ticks.tick()
    assert ERROR_CATEGORY_TAG not in tags_of(instance, result.run_id)
