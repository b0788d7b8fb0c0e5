"""``spx-data perf`` over a history processed for real (simulator, session job, tmp instance)."""

from __future__ import annotations

import json

import pytest

from spx_dagster.core.storage import load_manifest
from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    history,  # noqa: F401  (fixture)
    invoke,
)


def test_perf_json_has_one_sample_per_published_session(history) -> None:  # noqa: F811
    result = invoke("perf", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # The no-data session and the failed one have no throughput.
    assert document["sessions"] == 3
    by_day = {s["session"]: s for s in document["history"]}
    assert sorted(by_day) == [d.isoformat() for d in COMPLETE]
    for day in COMPLETE:
        sample = by_day[day.isoformat()]
        manifest = load_manifest(history.output_dir, day)
        assert sample["source"] == "dagster" and sample["run_id"]
        assert (sample["rows"], sample["bytes"]) == (manifest.rows, manifest.bytes)
        assert sample["seconds"] == pytest.approx(manifest.durations.total_s, abs=1e-3)
        assert sample["records_per_min"] == pytest.approx(
            manifest.rows * 60 / sample["seconds"], rel=1e-3
        )
        assert sample["peak_rss_mb"] > 50  # this process's peak, recorded by the run
        assert sample["retries"] == 0
    assert document["total_rows"] == sum(
        load_manifest(history.output_dir, d).rows for d in COMPLETE
    )
    summary = document["summary"]["records_per_min"]
    assert summary["samples"] == 3 and summary["median"] > 0
    # Three samples are too few for a trend; the report says so rather than guessing.
    assert document["trends"] == {} and "trends need at least 4" in document["notes"][0]


def test_perf_range_and_table(history) -> None:  # noqa: F811
    document = json.loads(invoke("perf", "--from", "2024-11-05", "--json").stdout)
    assert [s["session"] for s in document["history"]] == ["2024-11-05", "2024-11-06"]
    result = invoke("perf")
    assert result.exit_code == 0
    assert "rows/min" in result.stdout and COMPLETE[0].isoformat() in result.stdout
    assert "3 session(s)" in result.stdout


def test_perf_with_nothing_processed_in_range(history) -> None:  # noqa: F811
    result = invoke("perf", "--to", "2024-11-01")
    assert result.exit_code == 0
    assert "no processed session in that range yet" in result.stdout
