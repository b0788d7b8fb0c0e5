"""``spx-data gaps`` over a history processed for real (simulator, session job, tmp instance)."""

from __future__ import annotations

import csv
import json
import statistics

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

WEEK = ("--from", "2024-11-01", "--to", "2024-11-12")


def test_gaps_are_categorised_prioritised_and_estimated(history) -> None:  # noqa: F811
    result = invoke("gaps", *WEEK, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    kinds = {g["session"]: g for g in document["sessions"]}
    assert set(kinds) == {"2024-11-01", "2024-11-11", "2024-11-12", FAILED.isoformat()}
    failed = kinds[FAILED.isoformat()]
    assert failed["kind"] == "failed" and failed["error_category"] == "permission"
    assert failed["retryable"] is False and failed["attempts"] == 1
    assert "last run failed (permission)" in failed["reasons"]
    assert {kinds[d]["kind"] for d in ("2024-11-01", "2024-11-11", "2024-11-12")} == {
        "never_attempted"
    }
    priorities = [g["priority"] for g in document["sessions"]]
    assert priorities == sorted(priorities, reverse=True)
    # A permanent failure ranks below sessions never attempted; newer sessions rank higher.
    assert document["sessions"][-1]["session"] == FAILED.isoformat()
    assert document["sessions"][0]["session"] == "2024-11-12"
    assert document["by_kind"] == {
        "never_attempted": 3,
        "failed": 1,
        "no_data": 0,
        "corrupt": 0,
        "low_quality": 0,
        "incomplete": 0,
    }
    assert document["no_data_sessions"] == 1 and document["expected_sessions"] == 8

    manifests = [load_manifest(history.output_dir, d) for d in COMPLETE]
    estimate = document["estimate"]
    assert estimate["basis"] == "history"
    assert estimate["sessions"] == 4
    assert estimate["terminal_seconds_per_session"] == round(
        statistics.median(m.durations.fetch_s for m in manifests) / estimate["fetches_at_once"], 1
    )
    assert estimate["bytes_per_session"] == int(statistics.median(m.bytes for m in manifests))
    assert estimate["bytes"] == 4 * estimate["bytes_per_session"]
    assert estimate["free_bytes"] > 0 and estimate["fits"] is True


def test_default_range_runs_from_the_start_date_to_the_latest_session(history) -> None:  # noqa: F811
    document = json.loads(invoke("gaps", "--json").stdout)
    expected = calendar.sessions_between(START, calendar.latest_closed_session())
    assert document["from"] == START.isoformat()
    assert document["to"] == expected[-1].isoformat()
    assert document["gaps"] == len(expected) - 4  # 3 complete + 1 no_data are not gaps
    assert document["analysis_seconds"] < 1.0


def test_no_data_sessions_only_on_request(history) -> None:  # noqa: F811
    document = json.loads(invoke("gaps", *WEEK, "--include-no-data", "--json").stdout)
    kinds = {g["session"]: g["kind"] for g in document["sessions"]}
    assert kinds[NO_DATA.isoformat()] == "no_data"
    assert document["estimate"]["sessions"] == 4  # no-data sessions are not re-fetched


def test_low_quality_sessions_are_gaps(history, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("SPX_DATA_QUALITY__MIN_SCORE", "1.0")
    scores = {d.isoformat(): load_manifest(history.output_dir, d).quality.score for d in COMPLETE}
    document = json.loads(invoke("gaps", *WEEK, "--json").stdout)
    low = {g["session"]: g for g in document["sessions"] if g["kind"] == "low_quality"}
    assert set(low) == {day for day, score in scores.items() if score < 1.0}
    for day, gap in low.items():
        assert f"quality {scores[day]:.3f} below quality.min_score 1.0" in gap["reasons"]


def test_export_csv_and_json(history, tmp_path) -> None:  # noqa: F811
    as_json = json.loads(invoke("gaps", *WEEK, "--json").stdout)
    csv_path = tmp_path / "out" / "gaps.csv"
    result = invoke("gaps", *WEEK, "--export", str(csv_path))
    assert result.exit_code == 0
    assert f"wrote 4 gap(s) to {csv_path}" in result.stderr
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["session"] for r in rows] == [g["session"] for g in as_json["sessions"]]
    assert rows[-1]["kind"] == "failed" and rows[-1]["error_category"] == "permission"
    json_path = tmp_path / "gaps.json"
    assert invoke("gaps", *WEEK, "--export", str(json_path)).exit_code == 0
    exported = json.loads(json_path.read_text())
    assert exported["sessions"] == as_json["sessions"]


def test_export_needs_a_known_extension(history, tmp_path) -> None:  # noqa: F811
    result = invoke("gaps", "--export", str(tmp_path / "gaps.xlsx"))
    assert result.exit_code == 2
    assert "must end in .csv or .json" in result.stderr
    assert not (tmp_path / "gaps.xlsx").exists()


def test_table_shows_reasons_estimates_and_what_next(history) -> None:  # noqa: F811
    result = invoke("gaps", *WEEK)
    assert result.exit_code == 0
    out = result.stdout
    assert "last run failed (permission)" in out and "never attempted" in out
    assert "4 gap(s) among 8 sessions: 3 never_attempted, 1 failed" in out
    assert "from the median of published sessions" in out
    assert "spx-data fill-gaps --dry-run" in out
