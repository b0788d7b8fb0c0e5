"""The session assets end to end: real simulator over HTTP, real instance, real files, DuckDB."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster_duckdb import DuckDBResource

from spx_dagster.core.cpu_clock import window_of_manifest_extra
from spx_dagster.core.storage import load_manifest, published_sessions, verify_session
from spx_dagster.core.storage.layout import OutputLayout, TempLayout
from spx_dagster.core.storage.stage_tables import read_stage_table, write_stage_table
from spx_dagster.defs.assets import options_parquet, raw_option_chains, validated_options
from spx_dagster.defs.catalog import catalog
from spx_dagster.defs.constants import (
    CHECKSUM_CHECK,
    ERROR_CATEGORY_TAG,
    PARQUET,
    QUALITY_CHECK,
    RAW,
    SCHEMA_CHECK,
    VALIDATED,
)
from spx_dagster.defs.resources import SpxSettingsResource, ThetaDataResource
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 4)
KEY = SESSION.isoformat()
SESSION_ASSETS = [raw_option_chains, validated_options, options_parquet]


def resources():
    return {"spx_settings": SpxSettingsResource(), "thetadata": ThetaDataResource()}


def run_session(instance, *, selection=None, key=KEY):
    return dg.materialize(
        SESSION_ASSETS,
        partition_key=key,
        instance=instance,
        resources=resources(),
        selection=selection,
        raise_on_error=False,
    )


def check_status(instance, check_key, key=KEY):
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key])
    by_key = {info.partition_key: info.latest_execution_status for info in infos}
    return by_key.get(key)


def metadata_of(result, asset_key):
    events = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == asset_key
    ]
    assert len(events) == 1
    return {k: v.value for k, v in events[0].metadata.items()}


def assert_sha256sum_verifies(output_dir, manifest):
    """The .sha256 sidecars are standard: coreutils' `sha256sum -c` passes in each file's dir."""
    sha256sum = shutil.which("sha256sum")
    assert sha256sum, "coreutils sha256sum is needed to check the sidecar format"
    assert manifest.files
    for entry in manifest.files:
        path = output_dir / entry.path
        checked = subprocess.run(
            [sha256sum, "-c", path.name + ".sha256"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.strip() == f"{path.name}: OK"


@pytest.fixture
def instance(pipeline_home):
    with dg.instance_for_test() as inst:
        yield inst


def test_a_session_is_published_verified_and_checked(pipeline_home, instance):
    result = run_session(instance)
    assert result.success
    manifest = load_manifest(pipeline_home.output_dir, SESSION)
    assert manifest is not None and manifest.status == "complete"
    assert set(manifest.datasets) == {"greeks", "eod", "open_interest"}
    assert verify_session(pipeline_home.output_dir, SESSION).ok
    assert not TempLayout.of(pipeline_home.temp_dir).staging_dir(SESSION).exists()
    assert_sha256sum_verifies(pipeline_home.output_dir, manifest)
    # The machine's busy CPU from the fetch to the publish, for the backfill estimate.
    window = window_of_manifest_extra(manifest.extra)
    assert window is not None and window.busy_s > 0 and window.end_at > window.start_at
    listed = published_sessions(pipeline_home.output_dir)[SESSION]
    assert listed.cpu_window == window.as_tuple()

    published = metadata_of(result, PARQUET)
    assert published["rows"] == manifest.rows > 0
    assert published["files"] == len(manifest.files)
    raw = metadata_of(result, RAW)
    assert raw["requests"] == manifest.requests or raw["http_requests"] == manifest.requests
    assert raw["rows"] >= manifest.datasets["greeks"].rows
    validated = metadata_of(result, VALIDATED)
    assert 0.0 < validated["quality_score"] <= 1.0
    assert validated["quality_score"] == pytest.approx(manifest.quality.score)

    succeeded = AssetCheckExecutionRecordStatus.SUCCEEDED
    assert check_status(instance, SCHEMA_CHECK) == succeeded
    assert check_status(instance, CHECKSUM_CHECK) == succeeded
    assert check_status(instance, QUALITY_CHECK) in (
        succeeded,
        AssetCheckExecutionRecordStatus.FAILED,
    )
    assert KEY in instance.get_materialized_partitions(PARQUET)


def test_an_early_close_session_publishes_its_half_day_whole(pipeline_home, instance):
    # 2024-11-29 closed at 13:00: 211 one-minute rows per contract, none rejected.
    half_day = "2024-11-29"
    result = run_session(instance, key=half_day)
    assert result.success
    manifest = load_manifest(pipeline_home.output_dir, dt.date.fromisoformat(half_day))
    counts = manifest.quality.counts
    assert counts["rejected_rows"] == 0 and manifest.quality.reasons == {}
    assert counts["complete_contracts"] == counts["intraday_contracts"] > 0
    greeks = pq.read_table(
        [pipeline_home.output_dir / f.path for f in manifest.files if f.path.startswith("greeks")]
    )
    assert greeks.num_rows == 211 * counts["intraday_contracts"]
    assert max(greeks.column("timestamp").to_pylist()).time() == dt.time(13, 0)


def test_a_rerun_replaces_the_session_and_leaves_no_stray_file(pipeline_home, instance):
    assert run_session(instance).success
    first = load_manifest(pipeline_home.output_dir, SESSION)
    assert run_session(instance).success
    second = load_manifest(pipeline_home.output_dir, SESSION)
    assert second.created_at >= first.created_at
    for dataset, entry in second.datasets.items():
        directory = OutputLayout.of(pipeline_home.output_dir).dataset_session_dir(dataset, SESSION)
        on_disk = sorted(p.name for p in directory.iterdir())
        listed = sorted(
            name
            for f in entry.files
            for name in (f.path.rsplit("/", 1)[-1], f.path.rsplit("/", 1)[-1] + ".sha256")
        )
        assert on_disk == listed
    assert verify_session(pipeline_home.output_dir, SESSION).ok


def test_a_schema_break_publishes_nothing(pipeline_home, instance):
    fetched = run_session(instance, selection=[RAW])
    assert fetched.success
    part = TempLayout.of(pipeline_home.temp_dir).staged_parts(SESSION, "greeks")[0]
    path = TempLayout.of(pipeline_home.temp_dir).staged_file(SESSION, "greeks", part)
    table = read_stage_table(path)
    broken = table.drop_columns(["delta"]).append_column(
        "delta", pa.array(["x"] * table.num_rows, pa.string())
    )
    write_stage_table(path, broken)

    result = run_session(instance, selection=[VALIDATED, PARQUET])
    assert not result.success
    assert check_status(instance, SCHEMA_CHECK) == AssetCheckExecutionRecordStatus.FAILED
    assert load_manifest(pipeline_home.output_dir, SESSION) is None
    assert KEY not in instance.get_materialized_partitions(PARQUET)
    run = instance.get_run_by_id(result.run_id)
    assert run.tags.get(ERROR_CATEGORY_TAG) == "schema"


def test_a_permanent_error_is_categorised_and_not_retried(pipeline_home, instance, tiny_simulator):
    tiny_simulator.add_fault(FaultRule(kind="status", status=471, date=SESSION, times=None))
    result = run_session(instance)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags.get(ERROR_CATEGORY_TAG) == "permission"
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert restarts == []
    assert load_manifest(pipeline_home.output_dir, SESSION) is None


def test_the_catalog_indexes_published_sessions(pipeline_home, instance, tmp_path):
    assert run_session(instance).success
    manifest = load_manifest(pipeline_home.output_dir, SESSION)
    duckdb = DuckDBResource(database=str(tmp_path / "catalog.duckdb"))
    result = dg.materialize(
        [catalog],
        instance=instance,
        resources={"spx_settings": SpxSettingsResource(), "duckdb": duckdb},
    )
    assert result.success
    with duckdb.get_connection() as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
        rows = conn.execute("SELECT count(*) FROM greeks WHERE date = ?", [SESSION]).fetchone()
        assert rows[0] == manifest.datasets["greeks"].rows
        files = conn.execute("SELECT count(*) FROM files").fetchone()[0]
        assert files == len(manifest.files)
