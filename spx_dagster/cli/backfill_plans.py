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


def estimate_document(
    settings: Any, count: int, *, runs: list | None = None, concurrency: int | None = None
) -> dict:
    """Time and size to backfill ``count`` sessions (``core/estimates``, as gaps says): from the
    published sessions and the instance's ``runs`` (read with ``ops.sqlite_facts.reading_facts``
    when not given), ``concurrency`` runs at once when ``backfill --concurrency`` says so."""
    from spx_dagster.core.estimates import estimate_sessions
    from spx_dagster.core.run_limits import thetadata_pool_limit

    if runs is None:
        from spx_dagster.ops.sqlite_facts import reading_facts

        runs = reading_facts().run_facts()
    lanes = thetadata_pool_limit(
        settings.thetadata.subscription_tier, settings.effective_concurrency
    )
    output_dir = Path(settings.storage.output_dir)
    return estimate_sessions(
        output_dir, count, pool_limit=lanes, runs=runs, concurrency=concurrency
    ).to_dict()


def describe_estimate(estimate: dict) -> str:
    from spx_dagster.cli.progress_view import human_bytes, human_duration

    basis = "history" if estimate["basis"] == "history" else "defaults (no history yet)"
    return (
        f"about {human_duration(estimate['seconds'])} and {human_bytes(estimate['bytes'])} for "
        f"{estimate['sessions']} session(s) ({pace_text(estimate)}; estimated from {basis})"
    )


OVERHEAD_BASIS_TEXT = {
    "runs": "bound by the runs so far",
    "default": "a default",
}
CPU_BEFORE_ANY_BACKFILL_TEXT = (
    "as the published sessions' processing used it, and the daemon's share"
)


def _measured_where(estimate: dict) -> str:
    """``measured over the 20 runs of the last backfill`` (or of the last N backfills)."""
    runs, backfills = estimate.get("measured_runs", 0), estimate.get("measured_backfills", 0)
    where = "the last backfill" if backfills <= 1 else f"the last {backfills} backfills"
    return f"measured over the {runs} runs of {where}" if runs else f"measured in {where}"


def pace_text(estimate: dict) -> str:
    """``~4.3 s a session: 1.5 s of terminal time, 2.8 s of overhead (measured over the 20
    runs of the last backfill); 3 runs at once``: the estimate's model in words."""
    from spx_dagster.core.units import human_seconds

    measured = estimate["overhead_basis"] == "backfill"
    if measured:
        overhead_basis = _measured_where(estimate)
    else:
        overhead_basis = OVERHEAD_BASIS_TEXT[estimate["overhead_basis"]]
    if estimate.get("pace_basis") == "cpu":
        cpu_source = overhead_basis if measured else CPU_BEFORE_ANY_BACKFILL_TEXT
        overhead_basis = (
            f"the machine's {human_seconds(estimate['cpu_seconds_per_session'])} of CPU a "
            f"session on {estimate['cores']} core{'s' if estimate['cores'] != 1 else ''}, "
            f"{cpu_source}"
        )
    return (
        f"~{human_seconds(estimate['seconds_per_session'])} a session: "
        f"{human_seconds(estimate['terminal_seconds_per_session'])} of terminal time, "
        f"{human_seconds(estimate['overhead_seconds_per_session'])} of overhead "
        f"({overhead_basis}); "
        f"{estimate['parallel_sessions']} run{'s' if estimate['parallel_sessions'] != 1 else ''} "
        "at once"
    )
