"""Time the gap sensor over 2012→today on a SQLite instance; prints one JSON document.

Run as ``python -m spx_dagster_tests.defs.gap_sensor_bench DAGSTER_HOME`` with
``SPX_DATA_PROCESSING__START_DATE=2012-01-03`` so the code location's partitions start in 2012
(``test_sensors_gap.py`` does). The instance holds a long, realistic history: every published
session with its successful run and materialization, plus scattered gaps, failures (some at the
attempt cap, some permanent), corrupt sessions and runs in progress.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from spx_dagster.core import calendar
from spx_dagster.definitions import defs
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    PARQUET,
    PARTITION_TAG,
    SESSION_JOB,
)
from spx_dagster.defs.partitions import session_key
from spx_dagster.defs.resources import SpxSettingsResource
from spx_dagster.defs.sensors import GapCursor, gap_fill_sensor, last_due_session

FAILED_CATEGORIES = ("disconnected", "general", "permission", "crash")


def _run(instance, day, status, **tags):
    return create_run_for_test(
        instance,
        job_name=SESSION_JOB,
        status=status,
        tags={PARTITION_TAG: session_key(day), **tags},
    )


def populate(instance, sessions) -> dict[str, int]:
    """Every 97th session never attempted, every 89th failed 1-3 times, every 211th corrupt,
    the last three in progress; the rest published with a successful run."""
    counts = {"published": 0, "missing": 0, "failed": 0, "corrupt": 0, "in_progress": 0}
    for i, day in enumerate(sessions):
        if i >= len(sessions) - 3:
            _run(instance, day, dg.DagsterRunStatus.STARTED)
            counts["in_progress"] += 1
        elif i % 97 == 5:
            counts["missing"] += 1
        elif i % 89 == 7:
            for attempt in range(1 + i % 3):
                run = _run(
                    instance,
                    day,
                    dg.DagsterRunStatus.STARTED,
                    **{ERROR_CATEGORY_TAG: FAILED_CATEGORIES[(i + attempt) % 4]},
                )
                instance.report_run_failed(run)
            counts["failed"] += 1
        else:
            _run(instance, day, dg.DagsterRunStatus.SUCCESS)
            key = session_key(day)
            instance.report_runless_asset_event(dg.AssetMaterialization(PARQUET, partition=key))
            counts["published"] += 1
            if i % 211 == 11:
                instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(
                        asset_key=PARQUET,
                        check_name=CHECKSUM_CHECK.name,
                        passed=False,
                        partition=key,
                    )
                )
                counts["corrupt"] += 1
    return counts


def evaluate(instance, repository, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=repository,
        resources={"spx_settings": SpxSettingsResource()},
    )
    started = time.perf_counter()
    result = gap_fill_sensor.evaluate_tick(context)
    return result, time.perf_counter() - started


def main(dagster_home: str) -> None:
    repository = defs.get_repository_def()
    sessions = calendar.sessions_between(
        SpxSettingsResource().load().processing.start_date, last_due_session(calendar.now_et())
    )
    Path(dagster_home).mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=dagster_home) as instance:
        _, fresh = evaluate(instance, repository)  # a fresh instance: every session a gap
        setup_started = time.perf_counter()
        counts = populate(instance, sessions)
        setup = time.perf_counter() - setup_started
        timings = []
        for _ in range(3):
            result, seconds = evaluate(instance, repository)
            timings.append(seconds)
        idle_result, _ = evaluate(instance, repository)
        report = {
            "sessions": len(sessions),
            "first": sessions[0].isoformat(),
            "last": sessions[-1].isoformat(),
            "history": counts,
            "setup_s": round(setup, 1),
            "fresh_instance_s": round(fresh, 4),
            "evaluation_s": [round(t, 4) for t in timings],
            "requested": [r.partition_key for r in result.run_requests],
            "run_keys": [r.run_key for r in result.run_requests],
            "cursor": result.cursor,
        }
        cursor = GapCursor.from_json(idle_result.cursor)
        if cursor is not None and cursor.idle:
            _, idle = evaluate(instance, repository, cursor=idle_result.cursor)
            report["idle_skip_s"] = round(idle, 4)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
