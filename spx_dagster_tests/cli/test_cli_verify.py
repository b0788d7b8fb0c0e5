"""``spx-data verify``: real published sessions, real damage, results recorded in Dagster."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from spx_dagster.core.storage import load_manifest
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.defs.constants import CHECKSUM_CHECK
from spx_dagster.defs.instance_queries import corrupt_sessions
from spx_dagster_tests.cli.reading_history import invoke, run_session

DAY = dt.date(2024, 11, 4)
OTHER = dt.date(2024, 11, 5)


def flip_byte(path: Path, offset: int = 100) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def published_file(output_dir: Path, day: dt.date, dataset: str = "greeks") -> Path:
    manifest = load_manifest(output_dir, day)
    return output_dir / manifest.datasets[dataset].files[0].path


def corrupt_now() -> set[dt.date]:
    return corrupt_sessions(dg.DagsterInstance.get())


def gaps_kinds() -> dict[str, str]:
    document = json.loads(
        invoke("gaps", "--from", "2024-11-04", "--to", "2024-11-05", "--json").stdout
    )
    return {g["session"]: g["kind"] for g in document["sessions"]}


def latest_check(day: dt.date):
    instance = dg.DagsterInstance.get()
    infos = instance.event_log_storage.get_asset_check_partition_info([CHECKSUM_CHECK])
    return {i.partition_key: i for i in infos}.get(day.isoformat())


def test_corruption_found_by_verify_shows_in_gaps_until_republished(pipeline_home) -> None:
    assert run_session(DAY).success
    clean = invoke("verify", DAY.isoformat(), "--json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["results"][0]["ok"] is True
    info = latest_check(DAY)
    assert info.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED
    assert info.latest_planned_run_id == ""  # a runless evaluation

    damaged = published_file(pipeline_home.output_dir, DAY)
    flip_byte(damaged)
    found = invoke("verify", DAY.isoformat())
    assert found.exit_code == 1
    relative = damaged.relative_to(pipeline_home.output_dir).as_posix()
    assert "checksum_mismatch" in found.stdout and relative in found.stdout
    assert "spx-data process DATE --force" in found.stdout
    # Recorded as a failed checksums_match evaluation of that partition. Dagster 1.13 keeps one
    # runless evaluation per partition (the clean verify above took it), so this one goes in
    # under the verify invocation's id; it must count all the same.
    info = latest_check(DAY)
    assert info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED
    assert info.latest_planned_run_id.startswith("spx-verify-")
    assert info.is_current  # it targets the session's latest materialization
    assert corrupt_now() == {DAY}
    assert gaps_kinds()[DAY.isoformat()] == "corrupt"
    listed = json.loads(invoke("list", "--status", "corrupt", "--json").stdout)
    assert [s["session"] for s in listed["sessions"]] == [DAY.isoformat()]

    # A re-publish (its run checks the checksums) clears it; a clean verify agrees.
    assert run_session(DAY).success
    assert corrupt_now() == set()
    assert DAY.isoformat() not in gaps_kinds()
    assert invoke("verify", DAY.isoformat()).exit_code == 0

    # The same again after the re-publish.
    flip_byte(published_file(pipeline_home.output_dir, DAY), offset=200)
    again = invoke("verify", DAY.isoformat(), "--json")
    assert again.exit_code == 1
    problems = json.loads(again.stdout)["results"][0]["problems"]
    assert [p["kind"] for p in problems] == ["checksum_mismatch"]
    assert latest_check(DAY).latest_planned_run_id.startswith("spx-verify-")
    assert corrupt_now() == {DAY}
    assert run_session(DAY).success
    assert invoke("verify", DAY.isoformat()).exit_code == 0
    assert corrupt_now() == set()


def test_verify_range_reports_every_mismatch(pipeline_home) -> None:
    for day in (DAY, OTHER):
        assert run_session(day).success
    flip_byte(published_file(pipeline_home.output_dir, DAY, "greeks"))
    missing = published_file(pipeline_home.output_dir, DAY, "eod")
    missing.unlink()
    result = invoke("verify", "--from", "2024-11-01", "--to", "2024-11-08", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert (document["sessions"], document["ok"], document["corrupt"]) == (2, 1, 1)
    by_day = {r["session"]: r for r in document["results"]}
    kinds = sorted(p["kind"] for p in by_day[DAY.isoformat()]["problems"])
    assert kinds == ["checksum_mismatch", "missing_file"]
    assert by_day[OTHER.isoformat()]["ok"] is True
    assert by_day[OTHER.isoformat()]["bytes_checked"] > 0
    assert corrupt_now() == {DAY}


def test_a_deleted_manifest_of_a_materialized_session_is_found_by_all(pipeline_home) -> None:
    assert run_session(DAY).success
    OutputLayout.of(pipeline_home.output_dir).manifest_path(DAY).unlink()
    result = invoke("verify", "--all")
    assert result.exit_code == 1
    assert "missing_manifest" in result.stdout
    assert corrupt_now() == {DAY}
    assert gaps_kinds()[DAY.isoformat()] == "corrupt"


def test_usage_and_unpublished_dates(pipeline_home) -> None:
    nothing = invoke("verify")
    assert nothing.exit_code == 2 and "one DATE, a range with --from D --to D, or --all" in (
        nothing.stderr
    )
    both = invoke("verify", "2024-11-04", "--all")
    assert both.exit_code == 2
    bad = invoke("verify", "2024-02-30")
    assert bad.exit_code == 2 and "not a real calendar date" in bad.stderr
    weekend = invoke("verify", "2024-11-09")
    assert weekend.exit_code == 2 and "2024-11-09 is a Saturday" in weekend.stderr
    assert "2024-11-08 or 2024-11-11" in weekend.stderr
    unpublished = invoke("verify", "2024-11-06")
    assert unpublished.exit_code == 1
    assert "not published" in unpublished.stdout + unpublished.stderr
    # Nothing was recorded for a session that was never published.
    assert latest_check(dt.date(2024, 11, 6)) is None
    empty = invoke("verify", "--all", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["sessions"] == 0


def test_verify_all_exits_1_on_files_no_manifest_lists_and_removes_them_on_request(
    pipeline_home,
) -> None:
    assert run_session(DAY).success
    output = pipeline_home.output_dir
    listed = published_file(output, DAY)
    # Rows a reader of the README's glob would see although no manifest lists them: a copy in
    # the listed session's directory and a session that was never published.
    beside = listed.with_name("greeks-0123456789abcdef.parquet")
    beside.write_bytes(listed.read_bytes())
    never = output / "greeks" / f"date={OTHER}" / "greeks.parquet"
    never.parent.mkdir()
    never.write_bytes(listed.read_bytes())

    found = invoke("verify", "--all", "--json")
    assert found.exit_code == 1, found.output
    document = json.loads(found.stdout)
    orphans = {
        p["path"]: p
        for r in document["results"]
        for p in r["problems"]
        if p["kind"] == "orphan_file"
    }
    assert set(orphans) == {
        beside.relative_to(output).as_posix(),
        never.relative_to(output).as_posix(),
    }
    assert all(p["severity"] == "error" for p in orphans.values())
    text = invoke("verify", "--all")
    assert text.exit_code == 1
    assert "spx-data verify --all --remove-orphans" in text.output

    cleaned = invoke("verify", "--all", "--remove-orphans")
    assert cleaned.exit_code == 0, cleaned.output
    assert not beside.exists() and not never.exists() and listed.exists()
    assert invoke("verify", "--all").exit_code == 0
