"""What ``backfill``, ``fill-gaps`` and ``retry --backfill`` share before submitting: the
warning when no daemon will run the backfill, and the time and size estimate of a range.
Commands import this, never each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spx_dagster.cli.output import (
    warn,
)


def warn_without_daemon(instance: Any) -> bool:
    """Warn when no daemon heartbeats on the instance; True when one runs."""
    from spx_dagster.core.config.home import dagster_home
    from spx_dagster.ops import backfills

    if backfills.daemon_running(instance):
        return True
    warn(
        f"no dagster-daemon is running on this instance (DAGSTER_HOME={dagster_home()}): the "
        "backfill is recorded but nothing runs it until one starts. Start the web UI and the "
        "daemon with `spx-data serve` (or only the daemon: `dagster-daemon run -m "
        "spx_dagster.definitions`) with the same SPX_DATA_HOME."
    )
    return False


def estimate_document(settings: Any, count: int) -> dict:
    """Time and size to process ``count`` sessions (``core/estimates``, as gaps says)."""
    from spx_dagster.core.estimates import estimate_sessions
    from spx_dagster.defs.instance_config import thetadata_pool_limit

    lanes = thetadata_pool_limit(
        settings.thetadata.subscription_tier, settings.effective_concurrency
    )
    output_dir = Path(settings.storage.output_dir)
    return estimate_sessions(output_dir, count, pool_limit=lanes).to_dict()


def describe_estimate(estimate: dict) -> str:
    from spx_dagster.cli.progress_view import human_bytes, human_duration

    basis = "history" if estimate["basis"] == "history" else "defaults (no history yet)"
    return (
        f"about {human_duration(estimate['seconds'])} and {human_bytes(estimate['bytes'])} for "
        f"{estimate['sessions']} session(s) ({estimate['parallel_sessions']} in parallel; "
        f"estimated from {basis})"
    )


# ---------------------------------------------------------------------------------------------
# backfill START END
# ---------------------------------------------------------------------------------------------
