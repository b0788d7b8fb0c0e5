"""``spx-data list`` over a history processed for real (simulator, session job, tmp instance)."""

from __future__ import annotations

import json

from spx_dagster.core import calendar
from spx_dagster.core.storage import load_manifest
from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    FAILED,
    NO_DATA,
    START,
    history,  # noqa: F401  (fixture)
    invoke,
)


def test_list_json_shows_processed_sessions_with_metadata(history) -> None:  # noqa: F811
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    expected = calendar.sessions_between(START, calendar.latest_closed_session())
    assert document["from"] == START.isoformat()
    assert document["counts"]["complete"] == 3
    assert document["counts"]["no_data"] == 1
    assert document["counts"]["failed"] == 1
    assert document["counts"]["missing"] == len(expected) - 5
    by_day = {s["session"]: s for s in document["sessions"]}
    assert sorted(by_day) == sorted(d.isoformat() for d in [*COMPLETE, NO_DATA, FAILED])
    for day in COMPLETE:
        row = by_day[day.isoformat()]
        manifest = load_manifest(history.output_dir, day)
        assert row["state"] == "complete"
        assert (row["rows"], row["bytes"]) == (manifest.rows, manifest.bytes)
        assert row["rows"] > 0 and row["quality"] == manifest.quality.score
        assert row["duration_s"] == manifest.durations.total_s
        assert row["attempts"] == 1 and row["last_run_status"] == "SUCCESS"
    failed = by_day[FAILED.isoformat()]
    assert failed["state"] == "failed" and failed["last_error_category"] == "permission"
    assert by_day[NO_DATA.isoformat()]["state"] == "no_data"


def test_list_filters_by_status_and_range(history) -> None:  # noqa: F811
    result = invoke("list", "--status", "failed", "--status", "no_data", "--json")
    states = {s["session"]: s["state"] for s in json.loads(result.stdout)["sessions"]}
    assert states == {FAILED.isoformat(): "failed", NO_DATA.isoformat(): "no_data"}

    result = invoke("list", "--status", "missing", "--from", "2024-11-01", "--to", "2024-11-12")
    assert result.exit_code == 0
    # Nov 1 and the sessions after the processed week; never the weekend or a holiday.
    for day in ("2024-11-01", "2024-11-11", "2024-11-12"):
        assert day in result.stdout
    for day in ("2024-11-02", "2024-11-03", "2024-11-04"):
        assert day not in result.stdout
    summary = "2024-11-01..2024-11-12: 8 sessions (3 complete, 1 failed, 1 no_data, 3 missing)"
    assert summary in result.stdout


def test_list_table_names_the_failure(history) -> None:  # noqa: F811
    result = invoke("list", "--from", FAILED.isoformat(), "--to", FAILED.isoformat())
    assert result.exit_code == 0
    assert FAILED.isoformat() in result.stdout and "permission" in result.stdout


def test_list_rejects_bad_dates_with_exit_2(history) -> None:  # noqa: F811
    result = invoke("list", "--from", "2024-13-01")
    assert result.exit_code == 2
    assert "'2024-13-01' is not a real calendar date" in result.stderr
    reversed_range = invoke("list", "--from", "2024-11-08", "--to", "2024-11-01")
    assert reversed_range.exit_code == 2
    assert "did you mean --from 2024-11-01 --to 2024-11-08" in reversed_range.stderr
    assert reversed_range.stdout == ""
