"""Submit an asset backfill of the session assets to the instance at DAGSTER_HOME.

Run as ``python -m spx_dagster_tests.scale.submit_backfill KEY [KEY ...]`` with the same
environment as the daemon, so that the partitions definition (which reads
``processing.start_date`` when the code location loads) is the one the daemon sees. Sets the
pool limits from the settings first, as ``spx-data backfill`` does, and prints
``{"backfill_id": ..., "pool_limits": {...}}``.
"""

from __future__ import annotations

import json
import sys
import time

import dagster as dg
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from spx_dagster.core.config import load_settings
from spx_dagster.definitions import defs
from spx_dagster.defs.constants import SESSION_ASSETS
from spx_dagster.defs.instance_config import apply_pool_limits


def main(keys: list[str]) -> None:
    instance = dg.DagsterInstance.get()
    limits = apply_pool_limits(instance, load_settings())
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=keys,
        asset_selection=list(SESSION_ASSETS),
        backfill_timestamp=time.time(),
        tags={"spx/trigger": "test"},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"scale test: {len(keys)} sessions",
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    print(json.dumps({"backfill_id": backfill.backfill_id, "pool_limits": limits}))


if __name__ == "__main__":
    main(sys.argv[1:])
