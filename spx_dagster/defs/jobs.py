"""Jobs: the session job (the three partitioned assets) that schedules and sensors target."""

import dagster as dg

from spx_dagster.defs.constants import SESSION_ASSETS, SESSION_JOB
from spx_dagster.defs.partitions import SESSIONS

session_job = dg.define_asset_job(
    SESSION_JOB,
    selection=dg.AssetSelection.assets(*SESSION_ASSETS),
    partitions_def=SESSIONS,
    description="Fetch, validate and publish one trading session.",
)
