"""The code location: ``dagster dev -m spx_dagster.definitions`` or ``-w workspace.yaml``."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from spx_dagster.defs.assets import options_parquet, raw_option_chains, validated_options
from spx_dagster.defs.catalog import catalog, catalog_file, catalog_job, catalog_refresh_sensor
from spx_dagster.defs.executors import selected_executor
from spx_dagster.defs.jobs import session_job
from spx_dagster.defs.resources import SpxSettingsResource, ThetaDataResource
from spx_dagster.defs.schedules import daily_session_schedule
from spx_dagster.defs.sensors import (
    canceled_category_sensor,
    failure_category_sensor,
    gap_fill_sensor,
)


def build_resources() -> dict:
    """Resources read the config store when a run starts; the catalog path when this loads."""
    return {
        "spx_settings": SpxSettingsResource(),
        "thetadata": ThetaDataResource(),
        "duckdb": DuckDBResource(database=catalog_file()),
    }


defs = dg.Definitions(
    assets=[raw_option_chains, validated_options, options_parquet, catalog],
    jobs=[session_job, catalog_job],
    schedules=[daily_session_schedule],
    sensors=[
        catalog_refresh_sensor,
        gap_fill_sensor,
        failure_category_sensor,
        canceled_category_sensor,
    ],
    resources=build_resources(),
    # in_process unless SPX_DATA_EXECUTOR selects another profile (defs/executors.py).
    executor=selected_executor(),
)
