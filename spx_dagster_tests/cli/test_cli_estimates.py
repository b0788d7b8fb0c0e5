"""One estimate in ``gaps``, ``fill-gaps --dry-run`` and ``backfill --dry-run`` (issue 11: on
43668ef gaps said ~3 h 03 min "from defaults" for a range without published sessions, where
fill-gaps and backfill said 30:18 "from history")."""

from __future__ import annotations

import json
import statistics

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
    keys = ("sessions", "seconds", "bytes", "parallel_sessions", "basis")
    assert len({tuple(e[k] for k in keys) for e in estimates}) == 1, estimates
    estimate = estimates[0]
    assert estimate["sessions"] == 5 and estimate["basis"] == "history"
    manifests = [load_manifest(history.output_dir, d) for d in COMPLETE]
    per_session = statistics.median(m.durations.total_s for m in manifests)
    assert estimate["seconds_per_session"] == round(per_session, 1)
    # Runs of one backfill at once (core/run_limits: 3), capped by the terminal pool.
    assert 1 <= estimate["parallel_sessions"] <= 3
    assert estimate["seconds"] == round(5 * per_session / estimate["parallel_sessions"], 1)
