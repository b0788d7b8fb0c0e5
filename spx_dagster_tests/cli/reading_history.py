"""A processed history for the read commands' tests, made for real through the pipeline.

Sessions are run through the session job (``spx_session_job``, in process) on the persistent
instance at a temporary ``DAGSTER_HOME``, against the built-in simulator over HTTP (tiny chain),
so manifests, runs, tags, checks and metadata are exactly what real processing leaves:

- three complete sessions,
- one session the vendor has no data for (the simulator answers 472 to every request),
- one session that failed: the simulator refuses its requests with 471 (permission), a failure
  that is not retried, so the run fails at once with category ``permission``.

It is made once per test session and shared read-only; the ``history`` fixture sets the
environment (``SPX_DATA_*``, ``DAGSTER_HOME``) for a whole module, so the CLI invoked by a test
reads the same home.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner, Result

from spx_dagster.cli.main import cli
from spx_dagster.defs.constants import SESSION_JOB
from spx_dagster.defs.partitions import session_key
from spx_dagster.simulator import FaultRule

START = dt.date(2024, 11, 1)
COMPLETE = [dt.date(2024, 11, 4), dt.date(2024, 11, 5), dt.date(2024, 11, 6)]
NO_DATA = dt.date(2024, 11, 7)
FAILED = dt.date(2024, 11, 8)
PERMISSION_DENIED = 471
NO_DATA_STATUS = 472


@dataclass(frozen=True)
class History:
    home: Path
    dagster_home: Path
    output_dir: Path
    base_url: str


def invoke(*args: str) -> Result:
    """Run ``spx-data ARGS`` in process (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_session(day: dt.date) -> dg.ExecuteInProcessResult:
    """Run the session job for ``day`` on the instance at ``DAGSTER_HOME``."""
    from spx_dagster.definitions import defs
    from spx_dagster.ops.instance import open_instance

    job = defs.resolve_job_def(SESSION_JOB)
    return job.execute_in_process(
        partition_key=session_key(day), instance=open_instance(), raise_on_error=False
    )


def pipeline_env(home: Path, base_url: str) -> dict[str, str]:
    return {
        "SPX_DATA_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "SPX_DATA_THETADATA__BASE_URL": base_url,
        "SPX_DATA_THETADATA__BACKOFF_MAX_S": "0.05",
        "SPX_DATA_STORAGE__MIN_FREE_GB": "0",
        "SPX_DATA_PROCESSING__START_DATE": START.isoformat(),
        # The tiny chain does not list every expiration the era's rules promise: trust its
        # listing (as pipeline_home does), or every session would count as incomplete.
        "SPX_DATA_QUALITY__LISTING_RULES": "false",
    }


_built: dict[str, History] = {}


def _build(tmp_path_factory, simulator) -> History:
    """Process the history once per test session; later modules reuse it (read-only)."""
    if "history" in _built:
        return _built["history"]
    home = tmp_path_factory.mktemp("reading") / "spx"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in pipeline_env(home, simulator.base_url).items():
            mp.setenv(key, value)
        simulator.clear_faults()
        simulator.set_connected(True)
        try:
            for day in COMPLETE:
                assert run_session(day).success
            simulator.add_fault(FaultRule(kind="status", status=NO_DATA_STATUS, date=NO_DATA))
            assert run_session(NO_DATA).success
            simulator.clear_faults()
            simulator.add_fault(FaultRule(kind="status", status=PERMISSION_DENIED, date=FAILED))
            assert not run_session(FAILED).success
        finally:
            simulator.clear_faults()
    _built["history"] = History(home, home / "dagster", home / "data", simulator.base_url)
    return _built["history"]


@pytest.fixture(scope="module")
def history(tmp_path_factory, tiny_simulator) -> Iterator[History]:
    """The processed history, with this module's environment pointing at it.

    Tests using it must not change it (verify and live-progress tests make their own).
    """
    built = _build(tmp_path_factory, tiny_simulator)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in pipeline_env(built.home, built.base_url).items():
            mp.setenv(key, value)
        yield built
