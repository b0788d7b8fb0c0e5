"""The Dagster instance spx-data runs on: its ``dagster.yaml`` and its pool limits.

``render_instance_yaml()`` is the repository's ``dagster.yaml`` (a test keeps the two equal) and
what ``spx-data`` writes into a new ``DAGSTER_HOME``. Pool limits live in the instance's storage,
not in the YAML, so ``apply_pool_limits`` sets them from the settings before work starts.

The ThetaData limit is global: every fetch step runs ``thetadata.concurrency`` requests at once,
and the ``thetadata`` pool admits ``tier limit // thetadata.concurrency`` fetch steps, so the
product never exceeds what the subscription allows, however many runs or workers are active.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from spx_dagster.core.run_limits import (
    BACKFILL_RUN_LIMIT,
    DEQUEUE_INTERVAL_S,
    MAX_CONCURRENT_RUNS,
    RUNS_STARTED_AHEAD_OF_THE_POOL,
    thetadata_pool_limit,
)
from spx_dagster.defs.constants import (
    BACKFILL_RUNS_TAG_PREFIX,
    BACKFILL_TAG,
    CATALOG_POOL,
    THETADATA_POOL,
)

RUN_RETRIES = 2


def _per_backfill_rules() -> str:
    # `spx-data backfill --concurrency N` (N below the limit above) tags its runs with
    # spx/backfill_runs_N=<backfill id>; one rule per N caps that backfill at N runs.
    return "".join(
        f"      - key: {BACKFILL_RUNS_TAG_PREFIX}{n}\n"
        f"        limit: {n}\n"
        "        value:\n"
        "          applyLimitPerUniqueValue: true\n"
        for n in range(1, BACKFILL_RUN_LIMIT)
    )


INSTANCE_YAML = f"""\
# Dagster instance of spx-data (written into DAGSTER_HOME by spx-data; see README "Concurrency").
# SQLite storage under DAGSTER_HOME by default; see deploy/postgres/dagster.yaml to scale out.
concurrency:
  runs:
    # Runs started at once; the rest wait in the queue (QueuedRunCoordinator).
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
    tag_concurrency_limits:
      # Runs of any one backfill at once, so a backfill leaves room for the daily run.
      - key: {BACKFILL_TAG}
        limit: {BACKFILL_RUN_LIMIT}
        value:
          applyLimitPerUniqueValue: true
{_per_backfill_rules()}  pools:
    # Pools without an explicit limit ({THETADATA_POOL} and {CATALOG_POOL} get theirs from
    # `spx-data`, see README): one step at a time.
    default_limit: 1
    # Runs started while the {THETADATA_POOL} pool is full: they wait at their fetch step with
    # their worker up, so no run start-up sits between two fetches (README "Concurrency").
    op_granularity_run_buffer: {RUNS_STARTED_AHEAD_OF_THE_POOL}
run_queue:
  # How often the queue starts runs (Dagster's default: every 5 s).
  dequeue_interval_seconds: {DEQUEUE_INTERVAL_S}
run_retries:
  # Re-run crashed runs (a killed worker); asset failures are retried per step by RetryPolicy.
  enabled: true
  max_retries: {RUN_RETRIES}
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""


# Instance storage profiles (README "Scaling out"). SQLite under DAGSTER_HOME is the embedded
# default; Postgres lets several machines (daemon, webserver, run and step workers) share one
# instance. Credentials come from the environment when the instance loads, never from the file.
SQLITE_STORAGE = "sqlite"
POSTGRES_STORAGE = "postgres"
POSTGRES_ENV = {
    "username": "SPX_DATA_PG_USER",
    "password": "SPX_DATA_PG_PASSWORD",
    "hostname": "SPX_DATA_PG_HOST",
    "db_name": "SPX_DATA_PG_DB",
    "port": "SPX_DATA_PG_PORT",
}
POSTGRES_STORAGE_YAML = (
    "# Runs, event logs, schedules and pool slots in PostgreSQL (dagster-postgres), so every\n"
    "# machine sees one instance; credentials come from these environment variables.\n"
    "storage:\n"
    "  postgres:\n"
    "    postgres_db:\n"
    + "".join(f"      {field}:\n        env: {var}\n" for field, var in POSTGRES_ENV.items())
    + "      # The driver dagster-postgres installs (SQLAlchemy 2.1 would pick psycopg 3).\n"
    + "      scheme: postgresql+psycopg2\n"
)
POSTGRES_HEADER = (
    '# Dagster instance of spx-data on PostgreSQL (README "Scaling out"): copy this file to\n'
    "# $DAGSTER_HOME/dagster.yaml on every machine and set SPX_DATA_PG_* there.\n"
)


def render_instance_yaml(storage: str = SQLITE_STORAGE) -> str:
    """The instance's ``dagster.yaml``: ``sqlite`` (the default) or ``postgres``.

    Both profiles share the run queue, tag limits, pool defaults and run retries; ``postgres``
    adds a ``storage`` block whose credentials are ``SPX_DATA_PG_*`` environment variables.
    """
    if storage == SQLITE_STORAGE:
        return INSTANCE_YAML
    if storage == POSTGRES_STORAGE:
        body = INSTANCE_YAML.split("\n", 2)[2]  # the default's two header lines name SQLite
        return POSTGRES_HEADER + POSTGRES_STORAGE_YAML + body
    raise ValueError(
        f"instance storage {storage!r} is not a profile spx-data knows; use "
        f"{SQLITE_STORAGE!r} (default) or {POSTGRES_STORAGE!r}"
    )


def pool_limits(settings: Any) -> dict[str, int]:
    td = settings.thetadata
    return {
        THETADATA_POOL: thetadata_pool_limit(td.subscription_tier, settings.effective_concurrency),
        CATALOG_POOL: 1,
    }


def apply_pool_limits(instance: dg.DagsterInstance, settings: Any) -> dict[str, int]:
    """Set the pools' limits in the instance from the settings; return them."""
    limits = pool_limits(settings)
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits
