"""How many Dagster runs may run at once: one number each, read by the instance's dagster.yaml
(``defs/instance_config.py``), the CLI's help and warnings, and the gap sensor's batch size."""

from __future__ import annotations

# Runs started at once by the queued run coordinator; the rest wait in the queue.
MAX_CONCURRENT_RUNS = 4
# Runs of any one backfill at once, so that a backfill leaves room for the daily run.
BACKFILL_RUN_LIMIT = 3
# Runs the queue starts although the terminal pool has no free slot: each waits at its fetch step
# with its worker up and its code loaded, so a run's start-up overlaps the fetch before it
# instead of sitting between two fetches (Dagster's ``op_granularity_run_buffer``).
RUNS_STARTED_AHEAD_OF_THE_POOL = 1
# How often the queue looks for runs to start (Dagster's default is 5 s; one session's fetch on
# a small chain is shorter than that).
DEQUEUE_INTERVAL_S = 1


def thetadata_pool_limit(tier: str, concurrency: int) -> int:
    """Fetch steps admitted at once so that steps × requests per step ≤ the tier's limit."""
    from spx_dagster.core.thetadata.vendor import TIER_CONCURRENCY, Tier

    limit = TIER_CONCURRENCY[Tier(str(tier))]
    return max(1, limit // max(1, int(concurrency)))
