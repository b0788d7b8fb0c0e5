"""``spx-data errors`` over a history processed for real (simulator, session job, tmp instance)."""

from __future__ import annotations

import json

from spx_dagster.core.history import retry_strategy
from spx_dagster_tests.cli.reading_history import (
    FAILED,
    history,  # noqa: F401  (fixture)
    invoke,
)


def test_errors_json_lists_the_failure_with_category_and_advice(history) -> None:  # noqa: F811
    result = invoke("errors", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["failures"] == 1 and document["runs"] == 5
    assert document["error_rate"] == 0.2
    assert document["unresolved_sessions"] == [FAILED.isoformat()]
    (entry,) = document["errors"]
    assert entry["session"] == FAILED.isoformat()
    assert entry["category"] == "permission"
    assert "471" in entry["message"] or "permission" in entry["message"].lower()
    assert (entry["attempt"], entry["attempts"], entry["resolved"]) == (1, 1, False)
    assert entry["when"] is not None
    (category,) = document["by_category"]
    assert category["advice"] == retry_strategy("permission")
    assert category["transient"] is False
    assert document["by_signature"][0]["categories"] == ["permission"]
    assert sum(document["by_hour"].values()) == 1
    assert any("will not fix" in line for line in document["observations"])


def test_errors_range_is_by_session(history) -> None:  # noqa: F811
    document = json.loads(invoke("errors", "--to", "2024-11-07", "--json").stdout)
    assert document["failures"] == 0 and document["runs"] == 4
    assert document["to"] == "2024-11-07"


def test_errors_table_names_category_pattern_and_next_step(history) -> None:  # noqa: F811
    result = invoke("errors")
    assert result.exit_code == 0
    out = result.stdout
    assert "1 failed run(s) of 1 session(s)" in out and "error rate 20%" in out
    assert "By category" in out and "permission" in out
    assert retry_strategy("permission") in out
    assert FAILED.isoformat() in out
    assert "spx-data retry --all-failed --dry-run" in out


def test_errors_with_nothing_failed(history) -> None:  # noqa: F811
    result = invoke("errors", "--from", "2024-11-04", "--to", "2024-11-06")
    assert result.exit_code == 0
    assert "no failed runs of sessions in 2024-11-04..2024-11-06 (3 finished run(s))" in (
        result.stdout
    )
