"""The code location, pinned: an accidental change to a key, check, partitioning, job, schedule,
sensor or instance setting shows up here as a diff (on purpose: update the pin with it)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from spx_dagster.core import calendar
from spx_dagster.core.quality import Family
from spx_dagster.definitions import defs
from spx_dagster.defs.instance_config import render_instance_yaml
from spx_dagster.defs.partitions import SESSIONS

REPO = Path(__file__).resolve().parents[2]

ASSETS = {
    "spx/raw_option_chains": [],
    "spx/validated_options": ["spx/raw_option_chains"],
    "spx/options_parquet": ["spx/validated_options"],
    "spx/catalog": ["spx/options_parquet"],
}
SESSION_ASSETS = {"spx/raw_option_chains", "spx/validated_options", "spx/options_parquet"}
# (asset, check) -> blocking
CHECKS = {
    ("spx/validated_options", "schema_conformance"): True,
    ("spx/validated_options", "quality_score"): False,
    ("spx/validated_options", "expiration_coverage"): False,
    ("spx/validated_options", "interval_completeness"): False,
    ("spx/options_parquet", "checksums_match"): True,
    # One warning check per research quality family, named after it.
    **{("spx/validated_options", family.value): False for family in Family},
}
POOLS = {"spx/raw_option_chains": {"thetadata"}, "spx/catalog": {"spx_catalog"}}
JOBS = {
    "spx_session_job": SESSION_ASSETS,
    "spx_catalog_job": {"spx/catalog"},
}
SCHEDULES = {
    # name: (cron, timezone, job, default status)
    "spx_daily_session": ("30 18 * * 1-5", "America/New_York", "spx_session_job", "STOPPED"),
}
SENSORS = {
    # name: (minimum interval in seconds, default status)
    "spx_catalog_refresh": (60, "RUNNING"),
    "spx_gap_fill": (15, "STOPPED"),
    "spx_failure_category": (10, "RUNNING"),
    "spx_canceled_category": (10, "RUNNING"),
}
RESOURCES = {"spx_settings", "thetadata", "duckdb"}


@pytest.fixture(scope="module")
def repository():
    return defs.get_repository_def()


def key(asset_key: dg.AssetKey) -> str:
    return asset_key.to_user_string()


def test_the_code_location_loads():
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_and_lineage(repository):
    graph = repository.asset_graph
    lineage = {
        key(k): sorted(key(p) for p in graph.get(k).parent_keys) for k in graph.get_all_asset_keys()
    }
    assert lineage == ASSETS


def test_asset_checks_and_which_block(repository):
    checks = {}
    for assets_def in repository.asset_graph.assets_defs:
        for spec in assets_def.check_specs:
            checks[(key(spec.asset_key), spec.name)] = spec.blocking
    assert checks == CHECKS


def test_session_assets_share_the_trading_session_partitions(repository):
    graph = repository.asset_graph
    for asset_key in graph.get_all_asset_keys():
        partitions = graph.get(asset_key).partitions_def
        if key(asset_key) in SESSION_ASSETS:
            assert partitions == SESSIONS
        else:
            assert partitions is None
    assert SESSIONS.cron_schedule == "0 0 * * *"
    assert SESSIONS.timezone == "America/New_York"
    assert SESSIONS.fmt == "%Y-%m-%d"
    assert SESSIONS.end_offset == 1
    week = SESSIONS.get_partition_keys_in_range(
        dg.PartitionKeyRange("2024-07-01", "2024-07-08")
    )  # Independence Day and a weekend excluded
    assert week == ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"]
    assert week == [d.isoformat() for d in calendar.sessions_between(*_range(week))]


def test_partitions_start_at_the_configured_start_date(tmp_path):
    """Read when the code location loads, in a process of its own: the module-level
    definition of this test process depends on whatever environment imported it first."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPX_DATA_")},
        "SPX_DATA_HOME": str(tmp_path),
        "SPX_DATA_PROCESSING__START_DATE": "2019-01-02",
    }
    code = (
        "from spx_dagster.defs.partitions import SESSIONS, configured_start_date;"
        "print(SESSIONS.start.date(), configured_start_date(), SESSIONS.get_first_partition_key())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["2019-01-02", "2019-01-02", "2019-01-02"]


def _range(keys: list[str]) -> tuple[dt.date, dt.date]:
    return dt.date.fromisoformat(keys[0]), dt.date.fromisoformat(keys[-1])


def test_pools_and_step_retries(repository):
    graph = repository.asset_graph
    pools = {key(k): set(graph.get(k).pools or ()) for k in graph.get_all_asset_keys()}
    assert {k: v for k, v in pools.items() if v} == POOLS
    raw = graph.get(dg.AssetKey(["spx", "raw_option_chains"])).assets_def
    policy = raw.op.retry_policy
    assert policy is not None and policy.max_retries == 2
    assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS


def test_jobs(repository):
    jobs = {}
    for job in repository.get_all_jobs():
        if job.name.startswith("__"):
            continue  # Dagster's implicit asset job
        selected = job.asset_layer.executable_asset_keys
        jobs[job.name] = {key(k) for k in selected}
    assert jobs == JOBS
    assert repository.get_job("spx_session_job").partitions_def == SESSIONS


def test_schedules(repository):
    schedules = {
        s.name: (s.cron_schedule, s.execution_timezone, s.job_name, s.default_status.value)
        for s in repository.schedule_defs
    }
    assert schedules == SCHEDULES


def test_sensors(repository):
    sensors = {
        s.name: (s.minimum_interval_seconds, s.default_status.value) for s in repository.sensor_defs
    }
    assert sensors == SENSORS
    gap = repository.get_sensor_def("spx_gap_fill")
    assert [t.job_name for t in gap.targets] == ["spx_session_job"]


def test_resources():
    assert set(defs.resources) == RESOURCES


def test_the_repository_dagster_yaml_is_the_rendered_one_and_loads(tmp_path):
    text = (REPO / "dagster.yaml").read_text()
    assert text == render_instance_yaml()
    (tmp_path / "dagster.yaml").write_text(text)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        # What the daemon's run queue reads (not the coordinator's own defaults).
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue.max_concurrent_runs == 4
        limits = [(x["key"], x["limit"]) for x in queue.tag_concurrency_limits]
        # One backfill leaves a run slot for the daily run; `backfill --concurrency N` rules.
        assert limits == [
            ("dagster/backfill", 3),
            ("spx/backfill_runs_1", 1),
            ("spx/backfill_runs_2", 2),
        ]
        assert concurrency.pool_config.default_pool_limit == 1
