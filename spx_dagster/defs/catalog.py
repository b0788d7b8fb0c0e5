"""The ``spx/catalog`` asset and the sensor that keeps it fresh.

The catalog is rebuilt from the manifests (``core/catalog.py``) through dagster-duckdb's
resource. Its pool ``spx_catalog`` (limit 1) keeps it the only writer of the DuckDB file; the
sensor requests one refresh after new sessions are published, never one per session.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from spx_dagster.core.catalog import refresh_catalog
from spx_dagster.core.config.home import spx_home
from spx_dagster.defs.constants import CATALOG, CATALOG_JOB, CATALOG_POOL, PARQUET, TRIGGER_TAG
from spx_dagster.defs.resources import SpxSettingsResource

CATALOG_FILENAME = "catalog.duckdb"


def catalog_file() -> str:
    """``$SPX_DATA_HOME/catalog.duckdb`` (read when the code location loads)."""
    return str(spx_home() / CATALOG_FILENAME)


@dg.asset(
    key=CATALOG,
    deps=[PARQUET],
    pool=CATALOG_POOL,
    group_name="spx",
    kinds={"duckdb"},
    description=(
        "DuckDB index of the published sessions (tables sessions, files, quality) and one view "
        "per dataset over the parquet files with hive partitioning."
    ),
)
def catalog(
    context: dg.AssetExecutionContext, spx_settings: SpxSettingsResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    cfg = spx_settings.pipeline()
    with duckdb.get_connection() as connection:
        stats = refresh_catalog(connection, cfg.output_dir)
    for problem in stats.unreadable:
        context.log.warning(f"skipped an unreadable manifest: {problem}")
    return dg.MaterializeResult(
        metadata={
            "sessions": stats.sessions,
            "files": stats.files,
            "views": list(stats.views),
            "unreadable_manifests": len(stats.unreadable),
            "seconds": round(stats.seconds, 3),
            "database": dg.MetadataValue.path(duckdb.database),
        }
    )


catalog_job = dg.define_asset_job(CATALOG_JOB, selection=[CATALOG])


@dg.sensor(
    name="spx_catalog_refresh",
    job=catalog_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes spx/catalog once after new sessions are published.",
)
def catalog_refresh_sensor(context: dg.SensorEvaluationContext):
    """Compare the latest parquet materialization with the one the catalog last saw."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PARQUET), limit=1
    ).records
    if not records:
        return dg.SkipReason("no session has been published yet")
    latest = records[0]  # an EventLogRecord: it has the storage id (an EventLogEntry has not)
    seen = int(context.cursor or 0)
    if latest.storage_id <= seen:
        return dg.SkipReason("the catalog is up to date")
    context.update_cursor(str(latest.storage_id))
    return dg.RunRequest(
        run_key=f"catalog-{latest.storage_id}", tags={TRIGGER_TAG: "catalog_sensor"}
    )
