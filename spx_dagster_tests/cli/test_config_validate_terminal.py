"""``config validate`` asks thetadata.base_url whether a terminal answers (issue 11: it said
"valid" on 43668ef with nothing listening there)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from spx_dagster.cli.main import cli


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port held by a socket that never listens: connections to it are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def validate(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["config", "validate", *args], env=env, catch_exceptions=False)


def test_nothing_listening_is_a_warning_saying_how_to_start_a_terminal(pipeline_home, silent_url):
    port = silent_url.rsplit(":", 1)[1]
    result = validate(env={"SPX_DATA_THETADATA__BASE_URL": silent_url})
    assert result.exit_code == 0, result.output
    assert f"thetadata.base_url = {silent_url}" in result.stdout
    assert "no ThetaTerminal is listening there" in result.stdout
    assert "java -jar ThetaTerminalv3.jar" in result.stdout
    assert f"spx-data simulator --port {port}" in result.stdout
    assert "--offline" in result.stdout and "0 error(s), 1 warning(s)" in result.stdout

    document = json.loads(
        validate("--json", env={"SPX_DATA_THETADATA__BASE_URL": silent_url}).stdout
    )
    assert document["valid"] is True and document["warnings"] == 1
    (warning,) = [p for p in document["problems"] if p["severity"] == "warning"]
    assert warning["key"] == "thetadata.base_url" and "spx-data simulator" in warning["fix"]


def test_offline_skips_the_terminal_check(pipeline_home, silent_url):
    result = validate("--offline", env={"SPX_DATA_THETADATA__BASE_URL": silent_url})
    assert result.exit_code == 0, result.output
    assert "ThetaTerminal" not in result.stdout
    assert "0 error(s), 0 warning(s)" in result.stdout


def test_a_terminal_that_answers_is_noted_ready(pipeline_home):
    result = validate()
    assert result.exit_code == 0, result.output
    assert "ThetaTerminal v3 ready" in result.stdout and "0 warning(s)" in result.stdout


def test_a_terminal_of_the_other_api_version_is_a_warning(pipeline_home):
    result = validate(env={"SPX_DATA_THETADATA__API_VERSION": "v2"})
    assert result.exit_code == 0, result.output
    assert "speaks v3, not v2" in result.stdout and "1 warning(s)" in result.stdout
