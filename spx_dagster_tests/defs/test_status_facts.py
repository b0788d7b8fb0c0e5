"""``ops.status_facts``: what ``spx-data status`` reads of a quiet default SQLite instance
without Dagster is exactly what Dagster's API gives, the required daemons are trusted only while
``dagster.yaml`` and Dagster are the ones they were recorded for, and ``status`` as a user runs
it imports no Dagster module once they are recorded."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

# Test-only: a daemon heartbeat as the daemon writes it (no public constructor in Dagster 1.13).
from dagster._daemon.types import DaemonHeartbeat

from spx_dagster.core.config import load_settings
from spx_dagster.core.progress import ProgressReporter
from spx_dagster.defs import constants, partitions
from spx_dagster.defs.assets import progress_dir
from spx_dagster.ops import instance as ops_instance
from spx_dagster.ops import status, status_facts
from spx_dagster.ops.instance import open_instance
from spx_dagster.ops.sqlite_facts import open_sqlite_facts
from spx_dagster.ops.status_facts import (
    DagsterStatusFacts,
    SqliteStatusFacts,
    open_sqlite_status_facts,
)
from spx_dagster_tests.defs.synthetic_history import publish_synthetic, synthetic_manifest

MON, TUE, WED, THU = (dt.date(2024, 3, d) for d in (11, 12, 13, 14))
REPO = Path(__file__).resolve().parents[2]
S = dg.DagsterRunStatus


def test_the_names_read_are_dagsters() -> None:
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    assert tuple(s.value for s in FINISHED_STATUSES) == status_facts.FINISHED_STATUSES
    assert status_facts.INSTANCE_YAML_NAME == ops_instance.INSTANCE_YAML_NAME


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "spx" / "dagster"))
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", "2024-03-11")
    # No terminal listens here: the terminal check answers "unreachable" at once.
    monkeypatch.setenv("SPX_DATA_THETADATA__BASE_URL", "http://127.0.0.1:9")
    instance = open_instance()
    yield instance, load_settings(), tmp_path / "spx" / "dagster"
    instance.dispose()


def _run(instance, day: dt.date | None, run_status: dg.DagsterRunStatus, **tags: str) -> str:
    run_id = str(uuid.uuid4())
    all_tags = {constants.PARTITION_TAG: partitions.session_key(day)} if day else {}
    all_tags.update({k.replace("__", "/"): v for k, v in tags.items()})
    instance.add_run(
        dg.DagsterRun(
            job_name=constants.SESSION_JOB, run_id=run_id, status=run_status, tags=all_tags
        )
    )
    return run_id


def _progress(run_id: str, stage: str) -> None:
    """The progress file a run of THU writes."""
    reporter = ProgressReporter(
        session=partitions.session_key(THU), run_id=run_id, directory=Path(progress_dir())
    )
    reporter.stage(stage, total=4, done=1)


def _varied_history(instance, settings) -> str:
    """Finished runs of every kind the error rate tells apart, heartbeats fresh and stale, and
    the progress file of a run this instance already finished; returns that run's id."""
    output = Path(settings.storage.output_dir)
    for i, day in enumerate((MON, TUE)):
        publish_synthetic(output, synthetic_manifest(day, i))
    _run(instance, MON, S.FAILURE, spx__error_category="rate_limited")
    _run(instance, MON, S.SUCCESS)
    _run(instance, TUE, S.FAILURE, spx__error_category="not_closed")  # refused: not an attempt
    _run(instance, WED, S.CANCELED, spx__error_category="network")
    _run(instance, WED, S.FAILURE)  # no category recorded
    _run(instance, None, S.SUCCESS)  # the catalog refresh: no session
    finished = _run(instance, THU, S.SUCCESS)
    now = time.time()
    instance.add_daemon_heartbeat(DaemonHeartbeat(now - 5, "SENSOR", "d1", None))
    instance.add_daemon_heartbeat(DaemonHeartbeat(now - 900, "SCHEDULER", "d1", None))
    _progress(finished, "fetch")
    return finished


def _fact_answers(facts, run_ids: list[str]) -> dict:
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    return {
        "storage_kind": facts.storage_kind,
        "runs_count": facts.runs_count(),
        "daemon_beats": facts.daemon_beats(),
        "required": facts.required_daemon_types(),
        "last_run": facts.last_run(),
        "in_progress": facts.runs_in_progress(),
        "knows": [facts.knows_run(run_id) for run_id in run_ids],
        "finished": sorted(facts.finished_runs_since(week_ago), key=repr),
    }


def _document_parts(settings, facts, now: float) -> dict:
    """The parts of the status document the instance decides, at one fixed moment."""
    return {
        "instance": status._instance(facts),
        "daemon": status._daemon(facts, now),
        "activity": status._activity(facts, {}),
        "in_progress": status._in_progress(facts),
        "error_rate": status._error_rate(facts, now),
    }


def test_status_facts_and_document_equal_the_dagster_path(home) -> None:
    instance, settings, dagster_home = home
    finished = _varied_history(instance, settings)
    slow = DagsterStatusFacts(instance, dagster_home)
    assert open_sqlite_status_facts(dagster_home) is None  # the daemons are not recorded yet
    slow.required_daemon_types()
    fast = open_sqlite_status_facts(dagster_home)
    assert isinstance(fast, SqliteStatusFacts)
    ids = [finished, "not-a-run"]
    quiet = _fact_answers(fast, ids)
    assert quiet == _fact_answers(slow, ids)
    assert quiet["knows"] == [True, False] and quiet["in_progress"] == {}
    assert quiet["daemon_beats"].keys() == {"SENSOR", "SCHEDULER"}
    assert "SENSOR" in quiet["required"] and "BACKFILL" in quiet["required"]
    now = time.time()
    parts = _document_parts(settings, fast, now)
    assert parts == _document_parts(settings, slow, now)
    assert parts["error_rate"]["last_24h"] == {"runs": 4, "failed": 2, "rate": 0.5}
    assert parts["in_progress"] == []  # the finished run's progress file is not shown
    # The scheduler's heartbeat is stale: a warning that says how to start the daemon.
    assert parts["daemon"].level == status.WARNING and not parts["daemon"].details["running"]

    # A watch keeps its reader while runs start: it sees them as Dagster does.
    live = _run(instance, THU, S.STARTED)
    _progress(live, "validate")
    ids.append(live)
    assert _fact_answers(fast, ids) == _fact_answers(slow, ids)
    now = time.time()
    parts = _document_parts(settings, fast, now)
    assert parts == _document_parts(settings, slow, now)
    assert [row["run_id"] for row in parts["in_progress"]] == [live]
    fast.close()


def test_the_recorded_daemons_count_only_for_their_dagster_yaml(home) -> None:
    instance, settings, dagster_home = home
    _varied_history(instance, settings)
    DagsterStatusFacts(instance, dagster_home).required_daemon_types()
    assert open_sqlite_status_facts(dagster_home) is not None
    yaml = dagster_home / "dagster.yaml"
    yaml.write_text(yaml.read_text() + "\n# edited\n")
    assert open_sqlite_status_facts(dagster_home) is None
    DagsterStatusFacts(instance, dagster_home).required_daemon_types()
    assert open_sqlite_status_facts(dagster_home) is not None
    (dagster_home / status_facts.DAEMONS_CACHE_NAME).write_text("{not json")
    assert open_sqlite_status_facts(dagster_home) is None
    DagsterStatusFacts(instance, dagster_home).required_daemon_types()
    # A run in progress may be a dead CLI run only Dagster reaps: the Dagster path.
    _run(instance, THU, S.STARTED)
    assert open_sqlite_facts(dagster_home) is None
    assert open_sqlite_status_facts(dagster_home) is None


def test_status_as_a_user_runs_it_imports_no_dagster_once_the_daemons_are_known(home) -> None:
    instance, settings, _ = home
    _varied_history(instance, settings)
    probe = (
        "import sys\nfrom spx_dagster.cli.main import cli\n"
        "try:\n    cli(['status', '--json'], prog_name='spx-data')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))\n"
    )
    documents = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )
        assert done.returncode == 0, done.stderr
        *document, imported = done.stdout.strip().splitlines()
        documents.append((json.loads("\n".join(document)), imported))
    (first, first_imports), (second, second_imports) = documents
    assert first_imports != "[]"  # the first status records the daemons through Dagster
    assert second_imports == "[]"
    for key in ("instance", "daemon"):  # the heartbeats' ages move on between the two
        first["checks"][key]["details"].pop("heartbeat_age_s", None)
        second["checks"][key]["details"].pop("heartbeat_age_s", None)
        assert first["checks"][key]["details"] == second["checks"][key]["details"]
        assert first["checks"][key]["level"] == second["checks"][key]["level"]
    assert first["error_rate"] == second["error_rate"]
    assert first["activity"] == second["activity"]
    assert first["runs_in_progress"] == second["runs_in_progress"] == []
