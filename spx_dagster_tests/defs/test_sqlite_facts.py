"""``ops.sqlite_facts``: the runs and check results of a quiet default SQLite instance read
without Dagster are exactly what Dagster's API gives (``defs.instance_queries``), and anything
it cannot answer alike (a live run or backfill, another storage) falls back to Dagster."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest

from spx_dagster.core.config import load_settings
from spx_dagster.core.snapshot import build_snapshot
from spx_dagster.core.storage import Problem, ProblemKind, VerifyReport, load_manifest
from spx_dagster.defs import constants, partitions
from spx_dagster.defs.instance_queries import corrupt_sessions, run_facts
from spx_dagster.defs.session_state import DagsterFacts, record_verification, session_snapshot
from spx_dagster.ops import sqlite_facts
from spx_dagster.ops.instance import open_instance
from spx_dagster.ops.sqlite_facts import open_sqlite_facts
from spx_dagster_tests.cli.reading_history import history  # noqa: F401  (fixture)
from spx_dagster_tests.defs.synthetic_history import publish_synthetic, synthetic_manifest

MON, TUE, WED, THU, FRI = (dt.date(2024, 3, d) for d in (11, 12, 13, 14, 15))
REPO = Path(__file__).resolve().parents[2]


def test_the_names_read_are_dagsters_and_spx_datas() -> None:
    assert sqlite_facts.PARTITION_TAG == constants.PARTITION_TAG
    assert sqlite_facts.CPU_AT_SUBMIT_TAG == constants.CPU_AT_SUBMIT_TAG
    assert sqlite_facts.ERROR_CATEGORY_TAG == constants.ERROR_CATEGORY_TAG
    assert sqlite_facts.ERROR_MESSAGE_TAG == constants.ERROR_MESSAGE_TAG
    assert sqlite_facts.FORCED_TAG == constants.FORCED_TAG
    assert sqlite_facts.REVISIT_TAG == constants.REVISIT_TAG
    assert sqlite_facts.BACKFILL_TAG == constants.BACKFILL_TAG
    assert sqlite_facts.PARTITION_FORMAT == partitions.PARTITION_FORMAT
    assert constants.CHECKSUM_CHECK.asset_key.path == sqlite_facts.CHECKSUM_ASSET_PATH
    assert constants.CHECKSUM_CHECK.name == sqlite_facts.CHECKSUM_CHECK_NAME


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "spx"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "spx" / "dagster"))
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", "2024-03-11")
    instance = open_instance()  # spx-data's dagster.yaml: the SQLite default
    yield instance, load_settings(), tmp_path / "spx" / "dagster"
    instance.dispose()


def _run(instance, day: dt.date | None, status: dg.DagsterRunStatus, **tags: str) -> None:
    all_tags = {constants.PARTITION_TAG: partitions.session_key(day)} if day else {}
    all_tags.update({k.replace("__", "/"): v for k, v in tags.items()})
    instance.add_run(
        dg.DagsterRun(
            job_name=constants.SESSION_JOB, run_id=str(uuid.uuid4()), status=status, tags=all_tags
        )
    )


def _verify(instance, settings, day: dt.date, ok: bool) -> None:
    report = VerifyReport(session=day, status="complete" if ok else "corrupt")
    report.manifest = load_manifest(Path(settings.storage.output_dir), day)
    if not ok:
        report.problems.append(Problem(ProblemKind.CHECKSUM_MISMATCH, "greeks/x.parquet", "x"))
    record_verification(instance, report)


def _varied_history(instance, settings) -> None:
    output = Path(settings.storage.output_dir)
    for i, day in enumerate((MON, TUE, WED)):
        publish_synthetic(output, synthetic_manifest(day, i))
    S = dg.DagsterRunStatus
    _run(instance, MON, S.FAILURE, spx__error_category="rate_limited", spx__error_message="429")
    _run(instance, MON, S.SUCCESS, spx__forced="true")
    _run(instance, TUE, S.SUCCESS, spx__revisit="7")
    _run(instance, THU, S.CANCELED, spx__error_category="network")
    _run(instance, FRI, S.FAILURE, spx__error_category="not_closed")
    _run(instance, FRI, S.FAILURE)  # no category recorded
    _run(instance, None, S.SUCCESS)  # the catalog refresh: no session
    _run(instance, WED, S.SUCCESS, dagster__partition="not-a-date")
    _verify(instance, settings, TUE, ok=False)
    _verify(instance, settings, TUE, ok=True)  # repaired: the latest result counts
    _verify(instance, settings, WED, ok=False)


def test_facts_and_snapshot_equal_the_dagster_path(home) -> None:
    instance, settings, dagster_home = home
    _varied_history(instance, settings)
    fast = open_sqlite_facts(dagster_home)
    assert fast is not None
    assert fast.run_facts() == run_facts(instance)
    assert fast.corrupt_sessions() == corrupt_sessions(instance) == {WED}
    slow = session_snapshot(instance, settings, MON, FRI)
    quick = build_snapshot(fast, settings, MON, FRI)
    assert quick.records == slow.records and quick.runs == slow.runs
    assert quick.corrupt == slow.corrupt


def test_a_live_run_a_live_backfill_or_another_storage_falls_back_to_dagster(home) -> None:
    instance, settings, dagster_home = home
    _varied_history(instance, settings)
    assert open_sqlite_facts(dagster_home) is not None
    _run(instance, THU, dg.DagsterRunStatus.STARTED)  # may be a dead CLI run to reap
    assert open_sqlite_facts(dagster_home) is None
    yaml = dagster_home / "dagster.yaml"
    other = dagster_home.parent / "other"
    other.mkdir()
    (other / "history").symlink_to(dagster_home / "history")
    (other / "dagster.yaml").write_text(
        yaml.read_text() + "storage:\n  postgres:\n    postgres_url: postgresql://x\n"
    )
    assert open_sqlite_facts(other) is None
    assert open_sqlite_facts(dagster_home.parent / "nowhere") is None


def test_a_requested_backfill_falls_back_to_dagster(home) -> None:
    from spx_dagster.defs.dagster_internals import BulkActionStatus, PartitionBackfill

    instance, settings, dagster_home = home
    _varied_history(instance, settings)
    instance.add_backfill(
        PartitionBackfill(
            backfill_id="b1",
            status=BulkActionStatus.REQUESTED,
            from_failure=False,
            tags={},
            backfill_timestamp=0.0,
            partition_names=[partitions.session_key(THU)],
            partition_set_origin=None,
            serialized_asset_backfill_data=None,
            asset_selection=None,
        )
    )
    assert open_sqlite_facts(dagster_home) is None


def test_gaps_and_list_of_a_processed_history_equal_the_dagster_path(history) -> None:  # noqa: F811
    """The real pipeline's runs (start and end times, check results) through both readers; and
    the commands as a user runs them import no Dagster module."""
    settings = load_settings()
    instance = dg.DagsterInstance.get()
    fast = open_sqlite_facts(history.dagster_home)
    assert fast is not None
    assert fast.run_facts() == run_facts(instance) and fast.run_facts()
    assert fast.corrupt_sessions() == corrupt_sessions(instance)
    assert (
        build_snapshot(fast, settings).records
        == build_snapshot(DagsterFacts(instance), settings).records
    )
    probe = (
        "import sys\nfrom spx_dagster.cli.main import cli\n"
        "for args in (['gaps', '--json'], ['list', '--json']):\n"
        "    try:\n        cli(args, prog_name='spx-data')\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_status_reads_progress_where_runs_write_it() -> None:
    from spx_dagster.defs.assets import PROGRESS_DIRNAME
    from spx_dagster.ops import status

    assert status.PROGRESS_DIRNAME == PROGRESS_DIRNAME
