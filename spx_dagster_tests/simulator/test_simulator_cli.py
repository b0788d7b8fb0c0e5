"""``spx-data simulator``: a real process on a free port answers like a terminal; Ctrl-C: 130."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import requests
from click.testing import CliRunner

from spx_dagster.cli import exit_codes
from spx_dagster.cli.main import cli
from spx_dagster.core.thetadata.vendor import LIST_EXPIRATIONS_PATH
from spx_dagster.simulator import PROFILES, SimulatorServer
from spx_dagster.simulator.listing import CHAINS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_in_the_foreground_answers_and_stops_on_ctrl_c():
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spx_dagster.cli.main",
            "simulator",
            "--port",
            str(port),
            "--chain",
            "tiny",
            "--today",
            "2025-01-31",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            banner.append(line)
            if line.startswith("Press Ctrl-C") or not line:
                break
        text = "".join(banner)
        url = f"http://127.0.0.1:{port}"
        assert f"listening at {url}" in text
        assert f"curl '{url}/v3{LIST_EXPIRATIONS_PATH}?symbol=SPXW'" in text
        response = requests.get(f"{url}/v3{LIST_EXPIRATIONS_PATH}?symbol=SPXW", timeout=10)
        assert response.status_code == 200
        lines = response.content.split(b"\r\n")
        assert lines[0] == b"symbol,expiration" and lines[1] == b"SPXW,2012-06-01"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == exit_codes.INTERRUPTED, err
    assert "simulator stopped" in out


def test_port_in_use_exits_2_naming_the_port():
    with SimulatorServer(port=0, chain="tiny") as taken:
        result = CliRunner().invoke(
            cli, ["simulator", "--port", str(taken.port), "--chain", "tiny"]
        )
    assert result.exit_code == exit_codes.USAGE
    assert f"port {taken.port}" in result.output and "--port" in result.output


def test_help_documents_profiles_chains_and_control():
    result = CliRunner().invoke(cli, ["simulator", "--help"])
    assert result.exit_code == 0
    for name in [*PROFILES, *CHAINS]:
        assert name in result.output
    assert "/_sim/faults" in result.output and "curl" in result.output
    bad = CliRunner().invoke(cli, ["simulator", "--profile", "nope"])
    assert bad.exit_code == exit_codes.USAGE
