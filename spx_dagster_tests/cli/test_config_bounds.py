"""Every numeric key has finite bounds, written where a user looks (`config list`, the README),
and a value outside them never reaches the client, whichever layer it comes from (issue 11: on
43668ef `inf` was accepted and the next `process` died with an OverflowError)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.config import ConfigError, ConfigStore, describe_keys, load_settings
from spx_dagster.core.config.settings import SECTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _is_number(annotation: object) -> bool:
    return annotation in (int, float) or any(a in (int, float) for a in get_args(annotation))


# storage.file_mode is an int checked by its own validator (octal, no world write).
NUMERIC_KEYS = [
    f"{section}.{name}"
    for section, model in SECTIONS.items()
    for name, field in model.model_fields.items()
    if _is_number(field.annotation) and f"{section}.{name}" != "storage.file_mode"
]


def test_the_numeric_keys_are_found():
    assert {"thetadata.connect_timeout_s", "processing.max_dte", "quality.min_score"} <= set(
        NUMERIC_KEYS
    )


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_every_numeric_key_documents_a_finite_range(key):
    spec = {s.key: s for s in describe_keys()}[key]
    assert spec.range.count(" and ") == 1, spec.range  # a lower and an upper bound
    assert "at most" in spec.range and "e+" not in spec.range
    row = next(line for line in README.splitlines() if line.startswith(f"| `{key}` |"))
    assert f"Allowed: {spec.range}." in row


def test_config_list_names_each_range(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path))
    listing = CliRunner().invoke(cli, ["config", "list", "--json"], catch_exceptions=False)
    ranges = {entry["key"]: entry["range"] for entry in json.loads(listing.stdout)["keys"]}
    assert ranges["thetadata.connect_timeout_s"] == "greater than 0 and at most 300"
    assert ranges["thetadata.base_url"] is None
    wide = {"COLUMNS": "400"}  # one line per key, so a cell's text is not wrapped apart
    table = CliRunner().invoke(cli, ["config", "list"], env=wide, catch_exceptions=False)
    (row,) = [line for line in table.stdout.splitlines() if "thetadata.connect_timeout_s" in line]
    assert "Allowed: greater than 0 and at most 300." in row


def _store_unchecked(home: Path, key: str, value: str) -> None:
    """Write ``value`` as 43668ef's `config set` did: without the bounds of this version."""
    ConfigStore(home / "config.sqlite3").set("quality.min_score", "0.9")  # creates the schema
    with sqlite3.connect(home / "config.sqlite3") as conn:
        conn.execute(
            "INSERT INTO settings VALUES (?, ?, 1, '2026-01-01T00:00:00+00:00', 'old', 'cli')",
            (key, value),
        )


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_an_infinite_stored_value_is_refused_when_loaded(tmp_path, value):
    _store_unchecked(tmp_path, "thetadata.timeout_s", value)
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path, env={})
    message = str(refused.value)
    assert "thetadata.timeout_s" in message and "the config store" in message
    assert "spx-data config set thetadata.timeout_s 60" in message


def test_process_with_an_infinite_stored_timeout_exits_2_without_a_traceback(pipeline_home):
    _store_unchecked(pipeline_home.home, "thetadata.connect_timeout_s", "inf")
    spx = Path(sys.executable).with_name("spx-data")
    result = subprocess.run(
        [str(spx), "process", "2024-03-15"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "thetadata.connect_timeout_s" in result.stderr
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
