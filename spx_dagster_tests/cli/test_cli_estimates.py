"""One estimate in ``gaps``, ``fill-gaps --dry-run`` and ``backfill --dry-run`` (issue 11: on
43668ef gaps said ~3 h 03 min "from defaults" for a range without published sessions, where
fill-gaps and backfill said 30:18 "from history")."""

from __future__ import annotations

import json
import statistics

from spx_dagster.core.cpu_clock import window_of_manifest_extra
from spx_dagster.core.estimates import (
    BACKFILL_DAEMON_CADENCE_S,
    RUN_MACHINE_CPU_S,
    RUN_WORKER_START_S,
)
from spx_dagster.core.storage import load_manifest
from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    history,  # noqa: F401  (fixture)
    invoke,
)

# After the processed history: nothing is published in this range, so every session is a gap.
LATER = ("2024-11-18", "2024-11-22")


def test_gaps_fill_gaps_and_backfill_estimate_alike_from_all_history(history) -> None:  # noqa: F811
    gaps = json.loads(invoke("gaps", "--from", LATER[0], "--to", LATER[1], "--json").stdout)
    fill = invoke("fill-gaps", "--from", LATER[0], "--to", LATER[1], "--dry-run", "--json")
    assert fill.exit_code == 0, fill.output
    backfill = invoke("backfill", *LATER, "--dry-run", "--json")
    assert backfill.exit_code == 0, backfill.output

    estimates = [
        gaps["estimate"],
        json.loads(fill.stdout)["estimate"],
        json.loads(backfill.stdout)["estimate"],
    ]
    keys = (
        "sessions",
        "seconds",
        "bytes",
        "parallel_sessions",
        "fetches_at_once",
        "basis",
        "overhead_basis",
    )
    assert len({tuple(e[k] for k in keys) for e in estimates}) == 1, estimates
    estimate = estimates[0]
    assert estimate["sessions"] == 5 and estimate["basis"] == "history"
    # No backfill ran yet (the history was processed session by session): the overhead is the
    # bound the runs set, beyond the terminal time (core/estimates.py).
    assert estimate["overhead_basis"] == "runs"
    manifests = [load_manifest(history.output_dir, d) for d in COMPLETE]
    fetch = statistics.median(m.durations.fetch_s for m in manifests)
    run = statistics.median(m.durations.total_s for m in manifests)
    slots, at_once = estimate["fetches_at_once"], estimate["parallel_sessions"]
    assert at_once == 3 and 1 <= slots <= 3  # core/run_limits: 3 runs; the terminal pool
    terminal = fetch / slots
    overhead = max(0.0, (RUN_WORKER_START_S + run) / at_once - terminal)
    # Where the machine's CPU in the sessions' windows (plus a run's share) is slower than
    # the runs' bound on these cores, it sets the pace (a loaded machine, e.g. under CI).
    windows = [window_of_manifest_extra(m.extra) for m in manifests]
    cpu = statistics.median(w.busy_s for w in windows) + RUN_MACHINE_CPU_S
    assert estimate["cpu_seconds_per_session"] == round(cpu, 1)
    if cpu / windows[-1].cores > terminal + overhead:
        assert estimate["pace_basis"] == "cpu"
        overhead = cpu / windows[-1].cores - terminal
    else:
        assert estimate["pace_basis"] == "runs"
    assert estimate["terminal_seconds_per_session"] == round(terminal, 1)
    assert estimate["overhead_seconds_per_session"] == round(overhead, 1)
    pace = terminal + overhead
    fixed = BACKFILL_DAEMON_CADENCE_S + max(0.0, RUN_WORKER_START_S + run - pace)
    assert estimate["fixed_seconds"] == round(fixed, 1)
    assert estimate["seconds"] == round(fixed + 5 * pace, 1)


def test_backfill_concurrency_slows_the_estimate(history) -> None:  # noqa: F811
    """``backfill --concurrency 1`` runs one session at a time: its estimate says so."""
    default = json.loads(invoke("backfill", *LATER, "--dry-run", "--json").stdout)["estimate"]
    one = invoke("backfill", *LATER, "--concurrency", "1", "--dry-run", "--json")
    assert one.exit_code == 0, one.output
    single = json.loads(one.stdout)["estimate"]
    assert single["parallel_sessions"] == 1 and default["parallel_sessions"] == 3
    assert single["seconds"] > default["seconds"]
