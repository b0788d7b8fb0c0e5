"""Revisits of vendor holes: the gap sensor re-runs a session published with no-data answers for
listed expirations 1 and 7 days after its first publish, never a third time, and the manifest,
``spx-data gaps`` and ``fill-gaps`` say so.

Real parts: the tiny simulator over HTTP (its fault API answers 472 "no data" to the SPXW
history requests of the session), the session job run in process on the instance at a temporary
``DAGSTER_HOME``, real manifests, and the real sensor evaluated with its clock moved forward
(``calendar.now_et``, which it reads once per tick): nothing else about time is faked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.test_utils import create_run_for_test

from spx_dagster.cli.main import cli
from spx_dagster.core import calendar
from spx_dagster.core.storage import load_manifest, verify_session
from spx_dagster.definitions import defs
from spx_dagster.defs.constants import PARQUET, PARTITION_TAG, REVISIT_TAG, SESSION_JOB, TRIGGER_TAG
from spx_dagster.defs.partitions import session_key
from spx_dagster.defs.resources import SpxSettingsResource
from spx_dagster.defs.sensors import (
    GAP_KIND_TAG,
    GapCursor,
    gap_fill_sensor,
    last_due_session,
    revisit_run_key,
)
from spx_dagster.simulator import FaultRule

HISTORY = "/option/history/"  # greeks, eod and open_interest: not the listing
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


SESSIONS_SEEN: set[dt.date] = set()


@pytest.fixture
def session(pipeline_home, monkeypatch) -> dt.date:
    """The latest due session, the only one expected (processing.start_date)."""
    day = last_due_session(calendar.now_et())
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", day.isoformat())
    SESSIONS_SEEN.clear()
    SESSIONS_SEEN.add(day)
    return day


@pytest.fixture
def instance(pipeline_home):
    from spx_dagster.ops.instance import open_instance

    inst = open_instance()
    yield inst
    inst.dispose()


def no_data_for_spxw(simulator, day: dt.date, *, root: str = "SPXW") -> None:
    """The vendor answers "no data" for every history request of ``root`` on ``day``."""
    simulator.add_fault(FaultRule(kind="status", status=472, path=HISTORY, date=day, root=root))


def run_session(instance, day: dt.date, tags: dict[str, str] | None = None):
    job = defs.resolve_job_def(SESSION_JOB)
    result = job.execute_in_process(
        partition_key=session_key(day), instance=instance, tags=tags or {}, raise_on_error=False
    )
    assert result.success
    return result


@contextlib.contextmanager
def clock(monkeypatch, at: dt.datetime):
    with monkeypatch.context() as patch:
        patch.setattr(calendar, "now_et", lambda: at.astimezone(calendar.ET))
        yield


def evaluate(instance, monkeypatch, at: dt.datetime, cursor: str | None = None):
    """One tick at ``at``. Sessions that closed after the test's one count as published (a
    runless materialization), so that only revisits are asked for."""
    after = calendar.sessions_between(min(SESSIONS_SEEN), last_due_session(at))
    for day in after:
        if day not in SESSIONS_SEEN:
            SESSIONS_SEEN.add(day)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(PARQUET, partition=session_key(day))
            )
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=defs.get_repository_def(),
        resources={"spx_settings": SpxSettingsResource()},
    )
    with clock(monkeypatch, at):
        return gap_fill_sensor.evaluate_tick(context)


def revisits_requested(result) -> list[dg.RunRequest]:
    return [r for r in result.run_requests or [] if REVISIT_TAG in r.tags]


def first_published(output_dir, day: dt.date) -> dt.datetime:
    manifest = load_manifest(output_dir, day)
    assert manifest is not None and manifest.first_published_at is not None
    return manifest.first_published_at


def gaps_document(day: dt.date) -> dict:
    result = CliRunner().invoke(
        cli, ["gaps", "--from", day.isoformat(), "--to", day.isoformat(), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_hole_is_revisited_after_one_day_then_after_seven_and_never_again(
    pipeline_home, tiny_simulator, session, instance, monkeypatch
):
    out = pipeline_home.output_dir
    no_data_for_spxw(tiny_simulator, session)
    run_session(instance, session)
    published = load_manifest(out, session)
    assert published.revisits == [] and published.no_data > 0
    first = first_published(out, session)
    assert first == published.created_at

    document = gaps_document(session)
    (gap,) = document["sessions"]
    assert gap["kind"] == "incomplete" and document["by_kind"]["incomplete"] == 1
    assert gap["next_revisit"] == (first + DAY).astimezone(calendar.ET).date().isoformat()
    assert f"next revisit {gap['next_revisit']}" in gap["reasons"][0]

    early = evaluate(instance, monkeypatch, first + DAY - HOUR)
    assert early.run_requests == []
    cursor = GapCursor.from_json(early.cursor)
    assert cursor.idle and cursor.revisit_due == (first + DAY).isoformat()
    # An idle tick with nothing changed is skipped cheaply, until the revisit falls due.
    again = evaluate(instance, monkeypatch, first + DAY - HOUR, early.cursor)
    assert again.skip_message.startswith("nothing changed")

    due = evaluate(instance, monkeypatch, first + DAY + HOUR, early.cursor)
    (request,) = revisits_requested(due)
    assert request.partition_key == session_key(session)
    assert request.run_key == revisit_run_key(session, 1) == f"revisit-{session}-d1"
    assert request.tags[REVISIT_TAG] == "1"
    assert request.tags[TRIGGER_TAG] == "gap_sensor"
    assert request.tags[GAP_KIND_TAG] == "incomplete"

    run = run_session(instance, session, request.tags)  # the vendor has not back-filled yet
    after_one = load_manifest(out, session)
    (record,) = after_one.revisits
    assert record["after_days"] == 1 and record["run_id"] == run.run_id
    assert record["holes_before"] == record["holes_after"] >= 1
    assert record["kept"] == "new"
    assert after_one.first_published_at == first  # carried across the re-publish
    assert after_one.created_at >= first
    assert verify_session(out, session).ok
    gap = gaps_document(session)["sessions"][0]
    assert gap["kind"] == "incomplete"
    assert gap["next_revisit"] == (first + 7 * DAY).astimezone(calendar.ET).date().isoformat()

    assert revisits_requested(evaluate(instance, monkeypatch, first + 7 * DAY - HOUR)) == []
    (second,) = revisits_requested(evaluate(instance, monkeypatch, first + 7 * DAY + HOUR))
    assert second.run_key == f"revisit-{session}-d7" and second.tags[REVISIT_TAG] == "7"
    run_session(instance, session, second.tags)
    assert [r["after_days"] for r in load_manifest(out, session).revisits] == [1, 7]

    assert revisits_requested(evaluate(instance, monkeypatch, first + 30 * DAY)) == []
    gap = gaps_document(session)["sessions"][0]
    assert gap["kind"] == "incomplete" and gap["next_revisit"] is None
    assert "no revisit left (done after 1 and 7 day(s))" in gap["reasons"][0]


def test_a_revisit_that_finds_the_data_completes_the_session(
    pipeline_home, tiny_simulator, session, instance, monkeypatch
):
    out = pipeline_home.output_dir
    no_data_for_spxw(tiny_simulator, session)
    run_session(instance, session)
    before = load_manifest(out, session)
    first = first_published(out, session)
    (request,) = revisits_requested(evaluate(instance, monkeypatch, first + 2 * DAY))
    tiny_simulator.clear_faults()  # the vendor back-filled
    run_session(instance, session, request.tags)

    after = load_manifest(out, session)
    (record,) = after.revisits
    assert record["holes_before"] >= 1 and record["holes_after"] == 0 and record["kept"] == "new"
    assert after.datasets["greeks"].rows > before.datasets["greeks"].rows
    assert gaps_document(session)["sessions"] == []  # complete: no 7-day revisit either
    assert revisits_requested(evaluate(instance, monkeypatch, first + 8 * DAY)) == []


def test_a_revisit_that_finds_less_keeps_the_published_session(
    pipeline_home, tiny_simulator, session, instance, monkeypatch
):
    out = pipeline_home.output_dir
    no_data_for_spxw(tiny_simulator, session)
    run_session(instance, session)
    before = load_manifest(out, session)
    first = first_published(out, session)
    (request,) = revisits_requested(evaluate(instance, monkeypatch, first + DAY + HOUR))
    no_data_for_spxw(tiny_simulator, session, root="SPX")  # worse now: SPX answers no data too
    result = run_session(instance, session, request.tags)

    after = load_manifest(out, session)
    (record,) = after.revisits
    assert record["kept"] == "previous" and record["holes_after"] > record["holes_before"]
    assert {f.path: f.sha256 for f in after.files} == {f.path: f.sha256 for f in before.files}
    assert after.rows == before.rows and after.created_at == before.created_at
    assert verify_session(out, session).ok
    published = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.metadata.get("revisit_after_1d")
    ]
    assert published and published[0].metadata["revisit_after_1d"].value == "previous"
    # The revisit is spent: the next one is the 7-day one.
    assert gaps_document(session)["sessions"][0]["next_revisit"] == (
        (first + 7 * DAY).astimezone(calendar.ET).date().isoformat()
    )


def test_a_clean_session_is_never_revisited(pipeline_home, session, instance, monkeypatch):
    run_session(instance, session)
    first = first_published(pipeline_home.output_dir, session)
    for later in (DAY + HOUR, 7 * DAY + HOUR, 30 * DAY):
        result = evaluate(instance, monkeypatch, first + later)
        assert revisits_requested(result) == []
    assert GapCursor.from_json(result.cursor).revisit_due == ""
    assert gaps_document(session)["sessions"] == []


def test_no_revisit_while_a_run_of_the_session_is_in_flight(
    pipeline_home, tiny_simulator, session, instance, monkeypatch
):
    no_data_for_spxw(tiny_simulator, session)
    run_session(instance, session)
    first = first_published(pipeline_home.output_dir, session)
    run = create_run_for_test(
        instance,
        job_name=SESSION_JOB,
        status=dg.DagsterRunStatus.STARTED,
        tags={PARTITION_TAG: session_key(session)},
    )
    assert revisits_requested(evaluate(instance, monkeypatch, first + 2 * DAY)) == []
    instance.report_run_failed(run)
    (request,) = revisits_requested(evaluate(instance, monkeypatch, first + 2 * DAY))
    assert request.tags[REVISIT_TAG] == "1"


def test_fill_gaps_leaves_incomplete_sessions_to_the_sensor_unless_asked(
    pipeline_home, tiny_simulator, session, instance
):
    no_data_for_spxw(tiny_simulator, session)
    run_session(instance, session)
    span = ["--from", session.isoformat(), "--to", session.isoformat()]
    runner = CliRunner()
    plain = json.loads(runner.invoke(cli, ["fill-gaps", *span, "--dry-run", "--json"]).stdout)
    assert plain["to_fill"] == 0
    (left,) = plain["left_out"]
    assert left["kind"] == "incomplete" and "the gap sensor revisits it" in left["left_out_because"]
    asked = runner.invoke(cli, ["fill-gaps", *span, "--include-incomplete", "--dry-run", "--json"])
    plan = json.loads(asked.stdout)
    assert plan["to_fill"] == 1 and plan["by_kind"] == {"incomplete": 1}
