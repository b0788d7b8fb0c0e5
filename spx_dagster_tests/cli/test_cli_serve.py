"""``spx-data serve`` refuses what it cannot do before starting anything (the UI itself is
exercised by ``spx_dagster_tests/browser``)."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.cli.serve_cmd import dagster_dev_command, ui_url


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "spx-data serve --port 3001" in result.output


def test_a_port_in_use_exits_2_naming_it_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}" in result.output and "--port" in result.output
    assert not (tmp_path / "spx" / "dagster").exists()  # nothing was started or written


def test_invalid_settings_exit_2_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    monkeypatch.setenv("SPX_DATA_RETRY__MAX_ATTEMPTS", "zero")
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "retry.max_attempts" in result.output


def test_the_code_location_is_the_installed_module_and_the_url_is_reachable():
    command = dagster_dev_command("0.0.0.0", 3005)
    assert command[command.index("dev") + 1 :] == [
        "-m",
        "spx_dagster.definitions",
        "--host",
        "0.0.0.0",
        "--port",
        "3005",
    ]
    assert ui_url("0.0.0.0", 3005) == "http://127.0.0.1:3005"
    assert ui_url("::", 3005) == "http://[::1]:3005"
    assert ui_url("example.org", 80) == "http://example.org:80"
