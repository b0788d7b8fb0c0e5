"""``spx-data config``: every path through click's CliRunner on a real SQLite store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from spx_dagster.cli import exit_codes
from spx_dagster.cli.main import cli
from spx_dagster.core.config import ConfigStore

SUBCOMMANDS = ("set", "get", "list", "validate", "reset", "history")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in list(os.environ):
        if var.startswith("SPX_DATA_"):
            monkeypatch.delenv(var)
    home = tmp_path / "spx-home"
    monkeypatch.setenv("SPX_DATA_HOME", str(home))
    return home


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["config", *args], env=env, catch_exceptions=False)


def store(home: Path) -> ConfigStore:
    return ConfigStore(home / "config.sqlite3")


def test_every_config_command_has_help_with_an_example():
    for name in (None, *SUBCOMMANDS):
        args = ["config", name, "--help"] if name else ["config", "--help"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output and "spx-data config" in result.output


def test_set_valid_value_is_stored_with_a_version(home: Path):
    result = run("set", "thetadata.base_url", "http://127.0.0.1:25510")
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:25503 (default) → http://127.0.0.1:25510" in result.stdout
    assert "version 1" in result.stdout
    assert store(home).get("thetadata.base_url").value == "http://127.0.0.1:25510"
    again = run("set", "thetadata.base_url", "http://127.0.0.1:25510/")
    assert again.exit_code == 0 and "nothing changed" in again.stdout


def test_set_invalid_value_exits_2_with_guidance_and_keeps_the_store(home: Path):
    run("set", "thetadata.base_url", "http://127.0.0.1:25510")
    result = run("set", "thetadata.base_url", "ftp://x")
    assert result.exit_code == exit_codes.USAGE
    assert result.stdout == ""
    for part in ("thetadata.base_url", "'ftp://x'", "scheme", "http://127.0.0.1:25503"):
        assert part in result.stderr
    assert store(home).get("thetadata.base_url").value == "http://127.0.0.1:25510"
    history = run("history", "thetadata.base_url", "--json")
    changes = json.loads(history.stdout)["changes"]
    assert [(c["version"], c["new_value"]) for c in changes] == [(1, "http://127.0.0.1:25510")]


def test_set_rejects_a_cross_field_violation(home: Path):
    result = run("set", "thetadata.concurrency", "8")
    assert result.exit_code == exit_codes.USAGE
    assert "standard tier serves 4" in result.stderr and "nothing was stored" in result.stderr
    assert store(home).list() == {}


def test_set_warns_when_the_environment_still_overrides(home: Path):
    env = {"SPX_DATA_THETADATA__TIMEOUT_S": "5"}
    result = run("set", "thetadata.timeout_s", "30", env=env)
    assert result.exit_code == 0
    assert "SPX_DATA_THETADATA__TIMEOUT_S is set in this environment" in result.stderr


def test_unknown_key_exits_2_naming_close_matches(home: Path):
    for args in (
        ("set", "thetadata.baseurl", "x"),
        ("get", "thetadata.baseurl"),
        ("reset", "thetadata.baseurl"),
        ("history", "thetadata.baseurl"),
    ):
        result = run(*args)
        assert result.exit_code == exit_codes.USAGE, args
        assert "'thetadata.baseurl' is not a configuration key" in result.stderr
        assert "Did you mean thetadata.base_url" in result.stderr
    assert not (home / "config.sqlite3").exists()


def test_get_shows_values_and_their_sources(home: Path):
    run("set", "processing.datasets", "eod,greeks")
    env = {"SPX_DATA_THETADATA__TIMEOUT_S": "12"}

    one = run("get", "thetadata.timeout_s", env=env)
    assert one.exit_code == 0
    assert one.stdout.strip() == (
        "thetadata.timeout_s = 12  (environment (SPX_DATA_THETADATA__TIMEOUT_S))"
    )
    assert "stored (version 1)" in run("get", "processing.datasets").stdout

    everything = json.loads(run("get", "--json", env=env).stdout)
    assert everything["thetadata.timeout_s"] == {
        "key": "thetadata.timeout_s",
        "value": 12.0,
        "text": "12",
        "source": "environment",
        "env_var": "SPX_DATA_THETADATA__TIMEOUT_S",
        "stored_version": None,
    }
    assert everything["processing.datasets"]["value"] == ["eod", "greeks"]
    assert everything["processing.datasets"]["source"] == "stored"
    assert everything["retry.max_attempts"]["source"] == "default"
    assert everything["storage.output_dir"]["value"] == str(home / "data")

    table = run("get", env=env).stdout
    assert "environment (SPX_DATA_THETADATA__TIMEOUT_S)" in table and "default" in table


def test_get_falls_back_and_warns_on_an_unusable_environment_value(home: Path):
    run("set", "retry.max_attempts", "5")
    result = run("get", "retry.max_attempts", "--json", env={"SPX_DATA_RETRY__MAX_ATTEMPTS": "x"})
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert (document["value"], document["source"]) == (5, "stored")
    assert "SPX_DATA_RETRY__MAX_ATTEMPTS" in result.stderr and "ignored" in result.stderr


def test_list_documents_every_key(home: Path):
    table = run("list")
    assert table.exit_code == 0
    assert "thetadata.subscription_tier" in table.stdout and "$SPX_DATA_HOME/data" in table.stdout
    document = json.loads(run("list", "--json").stdout)
    keys = {entry["key"]: entry for entry in document["keys"]}
    assert keys["thetadata.concurrency"]["default"] == "none (the tier's limit)"
    assert keys["storage.file_mode"]["value"] == "640"
    assert all(entry["description"] and entry["example"] for entry in document["keys"])
    assert document["home"] == str(home)


def test_validate_reports_every_problem_at_once_and_exits_2(home: Path):
    run("set", "thetadata.base_url", "http://localhost:25503")
    env = {
        "SPX_DATA_THETADATA__CONCURRENCY": "16",
        "SPX_DATA_PROCESSING__START_DATE": "2016-01-02",
        "SPX_DATA_THETADATA__TIMEOUT_S": "-1",
        "SPX_DATA_STORAGE__MIN_FREE_GB": "1e9",
    }
    result = run("validate", "--offline", env=env)
    assert result.exit_code == exit_codes.USAGE
    for part in (
        "thetadata.concurrency = 16",
        "2016-01-02 is a Saturday",
        "thetadata.timeout_s = -1",
        "less than storage.min_free_gb",
        "127.0.0.1",  # the localhost warning
        "4 error(s), 1 warning(s)",
    ):
        assert part in result.stdout, part

    document = json.loads(run("validate", "--offline", "--json", env=env).stdout)
    assert document["valid"] is False
    assert (document["errors"], document["warnings"]) == (4, 1)
    by_key = {p["key"]: p for p in document["problems"] if p["severity"] == "error"}
    assert by_key["processing.start_date"]["source"] == (
        "environment (SPX_DATA_PROCESSING__START_DATE)"
    )
    assert (
        "spx-data config set processing.start_date 2016-01-04"
        in (by_key["processing.start_date"]["fix"])
    )


def test_validate_passes_with_warnings_and_creates_directories(home: Path):
    run("set", "thetadata.base_url", "http://localhost:25503")
    result = run("validate", "--offline")
    assert result.exit_code == 0, result.output
    assert "configuration is valid (0 error(s), 1 warning(s))" in result.stdout
    assert (home / "data").is_dir() and (home / "tmp").is_dir()


def test_reset_a_key_and_all_keys(home: Path):
    run("set", "thetadata.concurrency", "2")
    run("set", "retry.max_attempts", "4")
    run("set", "quality.min_score", "0.9")

    one = run("reset", "thetadata.concurrency")
    assert one.exit_code == 0 and "removed 2 (version 2)" in one.stdout
    assert "was not stored" in run("reset", "thetadata.concurrency").stdout
    assert run("reset").exit_code == exit_codes.USAGE
    assert run("reset", "retry.max_attempts", "--all").exit_code == exit_codes.USAGE

    everything = run("reset", "--all")
    assert everything.exit_code == 0
    assert "retry.max_attempts" in everything.stdout and "quality.min_score" in everything.stdout
    assert store(home).list() == {}
    assert json.loads(run("get", "thetadata.concurrency", "--json").stdout)["source"] == "default"


def test_history_lists_every_change_with_versions(home: Path):
    assert "no changes recorded" in run("history").stdout
    run("set", "thetadata.base_url", "http://127.0.0.1:25510")
    run("set", "thetadata.base_url", "ftp://rejected")
    run("set", "thetadata.base_url", "http://127.0.0.1:25511")
    run("reset", "thetadata.base_url")
    run("set", "retry.max_attempts", "4")

    document = json.loads(run("history", "thetadata.base_url", "--json").stdout)
    assert [
        (c["version"], c["action"], c["old_value"], c["new_value"], c["source"])
        for c in document["changes"]
    ] == [
        (1, "set", None, "http://127.0.0.1:25510", "cli"),
        (2, "set", "http://127.0.0.1:25510", "http://127.0.0.1:25511", "cli"),
        (3, "reset", "http://127.0.0.1:25511", None, "cli"),
    ]
    assert all(c["changed_by"] and c["changed_at"] for c in document["changes"])
    table = run("history", "--limit", "2").stdout
    assert "retry.max_attempts" in table and "reset" in table and "25510 " not in table


def test_a_schema_1_store_is_migrated_by_the_cli(home: Path):
    home.mkdir(parents=True)
    conn = sqlite3.connect(home / "config.sqlite3")
    conn.executescript(
        """
        CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
        INSERT INTO config VALUES ('processing.start_date', '2018-01-02', '2024-01-03T10:00:00');
        INSERT INTO config VALUES ('legacy.page_size', '500', '2024-01-03T10:00:00');
        PRAGMA user_version = 1;
        """
    )
    conn.commit()
    conn.close()

    got = json.loads(run("get", "processing.start_date", "--json").stdout)
    assert (got["value"], got["source"], got["stored_version"]) == ("2018-01-02", "stored", 1)
    validate = run("validate")
    assert "legacy.page_size" in validate.stdout and "config reset legacy.page_size" in (
        validate.stdout
    )
    assert run("set", "processing.start_date", "2019-01-02").exit_code == 0
    history = json.loads(run("history", "processing.start_date", "--json").stdout)["changes"]
    assert [(c["action"], c["version"]) for c in history] == [("migrate", 1), ("set", 2)]
    assert run("reset", "legacy.page_size").exit_code == 0
    assert "legacy.page_size" not in store(home).list()


def test_a_damaged_store_exits_2_naming_the_file(home: Path):
    home.mkdir(parents=True)
    (home / "config.sqlite3").write_bytes(b"garbage" * 200)
    result = run("get")
    assert result.exit_code == exit_codes.USAGE
    assert str(home / "config.sqlite3") in result.stderr


def test_config_commands_do_not_import_dagster(home: Path):
    code = (
        "import sys\n"
        "from spx_dagster.cli.main import cli\n"
        "for args in (['config', 'list'], ['config', 'set', 'retry.max_attempts', '4'],"
        " ['config', 'validate']):\n"
        "    try:\n"
        "        cli(args, prog_name='spx-data')\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, None), (args, exit.code)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def test_reset_warns_when_a_default_breaks_a_rule(home: Path):
    run("set", "processing.datasets", "eod")
    run("set", "processing.start_date", "2024-01-02")
    assert run("set", "thetadata.subscription_tier", "free").exit_code == 0
    result = run("reset", "processing.datasets")
    assert result.exit_code == 0
    assert "the free tier does not include greeks" in result.stderr
    assert "spx-data config validate" in result.stderr
    assert run("validate").exit_code == exit_codes.USAGE
