"""Waiting is not failing: a terminal that is starting (571), whose queue is full (429) or that is
reconnecting (474) is waited for by `spx-data process`, saying what it waits for (issue 11: on
43668ef one 429 or 571 to the readiness probe exited 3 saying the URL may be wrong). Real
simulator over HTTP; the probe's answers are planted with its fault rules."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.storage import load_manifest
from spx_dagster.core.thetadata.vendor import HEALTH_PATHS, STATUS_CODES, Behaviour
from spx_dagster.simulator import FaultRule

SESSION = dt.date(2024, 11, 8)
STATUS_PATH = HEALTH_PATHS["v3"]


def code_named(name: str) -> int:
    return next(c.code for c in STATUS_CODES.values() if c.name == name)


def test_process_waits_for_a_starting_then_busy_terminal(pipeline_home, tiny_simulator):
    starting, busy = code_named("SERVER_STARTING"), code_named("OS_LIMIT")
    assert STATUS_CODES[starting].behaviour is Behaviour.RETRY
    tiny_simulator.add_fault(FaultRule(kind="status", status=starting, path=STATUS_PATH, times=1))
    tiny_simulator.add_fault(FaultRule(kind="status", status=busy, path=STATUS_PATH, times=1))
    result = CliRunner().invoke(cli, ["process", SESSION.isoformat()], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("waiting for ThetaTerminal") >= 2
    assert f"{starting} SERVER_STARTING" in result.stderr and f"{busy} OS_LIMIT" in result.stderr
    assert load_manifest(pipeline_home.output_dir, SESSION) is not None


def test_process_gives_up_after_the_budget_with_exit_3(pipeline_home, tiny_simulator, monkeypatch):
    monkeypatch.setenv("SPX_DATA_THETADATA__TIMEOUT_S", "1")
    starting = code_named("SERVER_STARTING")
    tiny_simulator.add_fault(FaultRule(kind="status", status=starting, path=STATUS_PATH))
    result = CliRunner().invoke(cli, ["process", SESSION.isoformat()], catch_exceptions=False)
    assert result.exit_code == 3
    assert "did not become ready within 1s" in result.stderr
    assert "waiting for ThetaTerminal" in result.stderr
    assert load_manifest(pipeline_home.output_dir, SESSION) is None


def test_process_waits_for_a_reconnecting_terminal(pipeline_home, tiny_simulator):
    reconnecting = code_named("DISCONNECTED")
    assert STATUS_CODES[reconnecting].behaviour is Behaviour.WAIT_UPSTREAM
    tiny_simulator.add_fault(
        FaultRule(kind="status", status=reconnecting, path=STATUS_PATH, times=2)
    )
    result = CliRunner().invoke(cli, ["process", SESSION.isoformat()], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("waiting for ThetaTerminal") == 2
    assert f"answered {reconnecting}" in result.stderr
    assert load_manifest(pipeline_home.output_dir, SESSION) is not None


def test_a_probe_answer_that_will_not_fix_itself_is_not_waited_for(pipeline_home, tiny_simulator):
    """THETADATA.md says fail at once for these (here: two terminals on one account)."""
    two_terminals = code_named("INVALID_SESSION_ID")
    assert STATUS_CODES[two_terminals].behaviour is Behaviour.FAIL
    tiny_simulator.add_fault(FaultRule(kind="status", status=two_terminals, path=STATUS_PATH))
    result = CliRunner().invoke(cli, ["process", SESSION.isoformat()], catch_exceptions=False)
    assert result.exit_code == 3
    assert "waiting for ThetaTerminal" not in result.stderr
    assert f"{two_terminals} INVALID_SESSION_ID" in result.stderr
    assert STATUS_CODES[two_terminals].advice in result.stderr  # not "check the URL"
    assert load_manifest(pipeline_home.output_dir, SESSION) is None
