"""The summary index of the manifests (``core.storage.manifest_index``): kept in step by every
commit and removal, rebuilt when missing, corrupt or stale, never trusted past a manifest's
stamp, and answering exactly what reading every manifest answers."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from spx_dagster.core.storage import (
    ManifestSummary,
    find_tmp_leftovers,
    published_sessions,
    read_manifest,
    session_lock,
    unpublish_session,
    verify_all,
)
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.core.storage.manifest import load_manifest, write_manifest
from spx_dagster.core.storage.manifest_index import (
    _index_lock,
    drop_killed_index_writes,
    index_path,
    load_index,
    manifest_stamps,
)
from spx_dagster.core.storage.republish import commit_republish
from spx_dagster_tests.core.storage_publish_worker import version_tables
from spx_dagster_tests.core.test_storage_publish import _publish

DAYS = [dt.date(2024, 3, 13), dt.date(2024, 3, 14), dt.date(2024, 3, 15)]


@pytest.fixture()
def output(tmp_path: Path) -> Path:
    return tmp_path / "out"


def slow_path(output: Path) -> dict[dt.date, ManifestSummary]:
    """What the listing was before the index: every manifest read and summarised."""
    out = {}
    for path in sorted(OutputLayout.of(output).manifests_dir().glob("date=*.json")):
        manifest = read_manifest(path)
        out[manifest.session] = ManifestSummary.of(manifest)
    return out


def index_on_disk(output: Path) -> dict[str, tuple]:
    """The index file's entries as written (name -> stamp), read without any cache."""
    data = json.loads(index_path(output).read_text())
    return {name: tuple(entry["stamp"]) for name, entry in data["entries"].items()}


def stamps_now(output: Path) -> dict[str, tuple]:
    return {name: stamp for name, (_, stamp) in manifest_stamps(output).items()}


def test_every_commit_and_removal_keeps_the_index_in_step(output: Path) -> None:
    for day in DAYS:
        _publish(output, day, version_tables(day, "A"))
    assert index_on_disk(output) == stamps_now(output) and len(stamps_now(output)) == 3
    _publish(output, DAYS[1], version_tables(DAYS[1], "B"))  # a re-publish: a new inode
    assert index_on_disk(output) == stamps_now(output)
    with session_lock(output, DAYS[2]):
        manifest = load_manifest(output, DAYS[2])
        manifest.extra["underlying_range"] = 0.02
        commit_republish(output, manifest)
    assert index_on_disk(output) == stamps_now(output)
    with session_lock(output, DAYS[0]):
        unpublish_session(output, DAYS[0])
    assert index_on_disk(output) == stamps_now(output) and len(stamps_now(output)) == 2
    assert load_index(output)[f"date={DAYS[2]}.json"].summary.underlying_range == 0.02
    assert published_sessions(output) == slow_path(output)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated", "foreign version"])
def test_a_missing_or_corrupt_index_is_rebuilt_and_the_answer_is_unchanged(
    output: Path, damage: str
) -> None:
    for day in DAYS:
        _publish(output, day, version_tables(day, "A"))
    path = index_path(output)
    if damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"\x00not json")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        data = json.loads(path.read_text())
        data["index_version"] = 99
        for entry in data["entries"].values():
            entry["summary"]["rows"] = -1  # what a foreign index says is never read
        path.write_text(json.dumps(data))
    assert published_sessions(output) == slow_path(output)
    assert index_on_disk(output) == stamps_now(output)


def test_a_manifest_added_or_edited_behind_the_index_is_read(output: Path) -> None:
    _publish(output, DAYS[0], version_tables(DAYS[0], "A"))
    before = index_on_disk(output)
    # Written as an older spx-data (or a restore) would: the manifest alone, no index update.
    copy = load_manifest(output, DAYS[0])
    copy.session = DAYS[1]
    write_manifest(output, copy)
    # Edited in place by hand: same inode, another size and mtime.
    first = OutputLayout.of(output).manifest_path(DAYS[0])
    data = json.loads(first.read_text())
    data["extra"] = {"underlying_range": 0.031}
    with open(first, "r+", encoding="utf-8") as handle:
        handle.write(json.dumps(data))
        handle.truncate()
    assert index_on_disk(output) == before  # nothing told the index
    listed = published_sessions(output)
    assert listed == slow_path(output) and set(listed) == {DAYS[0], DAYS[1]}
    assert listed[DAYS[0]].underlying_range == 0.031
    assert index_on_disk(output) == stamps_now(output)  # the reader repaired it


def test_a_manifest_removed_behind_the_index_is_not_listed(output: Path) -> None:
    for day in DAYS:
        _publish(output, day, version_tables(day, "A"))
    OutputLayout.of(output).manifest_path(DAYS[1]).unlink()
    assert set(published_sessions(output)) == {DAYS[0], DAYS[2]}


def test_a_kill_between_the_commit_and_the_index_update_is_repaired_by_the_next_read(
    output: Path,
) -> None:
    for day in DAYS:
        _publish(output, day, version_tables(day, "A"))
    index_before = index_path(output).read_bytes()
    _publish(output, DAYS[2], version_tables(DAYS[2], "B"))
    # The state a kill right after the manifest's rename leaves: the new manifest, the old index.
    index_path(output).write_bytes(index_before)
    listed = published_sessions(output)
    assert listed == slow_path(output)
    assert listed[DAYS[2]].created_at == load_manifest(output, DAYS[2]).created_at.isoformat()
    assert index_on_disk(output) == stamps_now(output)


def test_a_kill_during_the_index_write_leaves_no_temp_file_after_the_next_commit(
    output: Path,
) -> None:
    """A writer killed between its temp file and the rename leaves ``.tmp-.index-*`` behind;
    the next writer (under the index's lock) removes it (CI: the SIGKILL reliability test)."""
    _publish(output, DAYS[0], version_tables(DAYS[0], "A"))
    killed = OutputLayout.of(output).manifests_dir() / ".tmp-.index-0123456789ab"
    killed.write_bytes(b'{"index_version": 1, "entr')
    _publish(output, DAYS[1], version_tables(DAYS[1], "A"))
    assert not killed.exists()
    assert find_tmp_leftovers(output) == []
    assert published_sessions(output) == slow_path(output)


@pytest.mark.parametrize("after", ["verify --all", "a listing"])
def test_a_kill_during_the_index_write_leaves_no_temp_file_after_a_check_or_a_read(
    output: Path, after: str
) -> None:
    """No commit may follow the kill (the killed run had committed; its re-run finds the session
    published): ``verify --all`` or any listing removes the temp file (CI: the SIGKILL test's
    ``publish +manifest`` kill left it to ``published_tree_problems``)."""
    _publish(output, DAYS[0], version_tables(DAYS[0], "A"))
    killed = OutputLayout.of(output).manifests_dir() / ".tmp-.index-0123456789ab"
    killed.write_bytes(b'{"index_version": 1, "entr')
    if after == "verify --all":
        assert all(report.ok for report in verify_all(output))
    else:
        assert published_sessions(output) == slow_path(output)
    assert not killed.exists()
    assert find_tmp_leftovers(output) == []


def test_an_index_write_in_progress_is_left_alone(output: Path) -> None:
    """While a writer holds the index's lock its temp file is work in progress, not a leftover."""
    _publish(output, DAYS[0], version_tables(DAYS[0], "A"))
    writing = OutputLayout.of(output).manifests_dir() / ".tmp-.index-0123456789ab"
    writing.write_bytes(b"{")
    with _index_lock(output, blocking=True, file_mode=0o644, dir_mode=0o755):
        assert drop_killed_index_writes(output) == []
        assert writing.exists()
    assert drop_killed_index_writes(output) == [writing]


def test_a_reader_that_cannot_write_the_index_still_answers(output: Path) -> None:
    for day in DAYS:
        _publish(output, day, version_tables(day, "A"))
    index_path(output).unlink()
    # Where the index lock cannot be taken (here `_locks` is a file; on a read-only mount the
    # open fails alike), a reader answers from the manifests and writes nothing.
    locks = output / "_locks"
    for lock in locks.iterdir():
        lock.unlink()
    locks.rmdir()
    locks.write_text("not a directory")
    assert published_sessions(output) == slow_path(output)
    assert not index_path(output).exists()


def test_concurrent_publishes_of_different_sessions_leave_every_entry(output: Path) -> None:
    days = [dt.date(2024, 4, 1) + dt.timedelta(days=i) for i in range(8)]
    errors: list[BaseException] = []

    def publish(day: dt.date) -> None:
        try:
            _publish(output, day, version_tables(day, "A"))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index_on_disk(output) == stamps_now(output) and len(stamps_now(output)) == 8
