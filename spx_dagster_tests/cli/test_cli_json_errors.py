"""`--json` commands that fail print one JSON error document on stdout (issue 11: on 43668ef
they printed nothing there), with the exit code of the contract."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from spx_dagster.cli.main import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "code", "category", "named"),
    [
        (("list", "--from", "2024-13-01"), 2, "usage", "2024-13-01"),
        (("gaps", "--from", "2024-03-15", "--to", "2024-03-01"), 2, "usage", "reversed"),
        (("verify", "2024-03-16"), 2, "usage", "Saturday"),
        (("process", "2024-03-15"), 3, "terminal_unreachable", "127.0.0.1:9"),
    ],
)
def test_a_failing_json_command_prints_one_error_document(
    pipeline_home, monkeypatch, args, code, category, named
):
    monkeypatch.setenv("SPX_DATA_THETADATA__BASE_URL", "http://127.0.0.1:9")
    result = invoke(*args, "--json")
    assert result.exit_code == code
    document = json.loads(result.stdout)  # exactly one document, nothing else on stdout
    assert document["exit_code"] == code and document["category"] == category
    assert named in document["error"] and document["hint"]
    assert "error:" in result.stderr


def test_a_command_that_printed_its_document_adds_no_second_one(pipeline_home):
    result = invoke("retry", "2024-03-15", "--json")  # never run: refused, its plan printed
    document = json.loads(result.stdout)
    assert "sessions" in document
