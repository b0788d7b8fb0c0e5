"""The reader contract (issue 12): what a reader following the README sees while sessions are
published, killed mid-publish and re-published, and what ``verify`` says meanwhile.

Real files, real DuckDB over the README's glob, real processes killed with SIGKILL; the pause
point in the verify race test is the one place a function is wrapped (to stop verify between
two files deterministically instead of hoping a timer lands there).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from spx_dagster.core.storage import (
    ProblemKind,
    Versions,
    commit_manifest,
    load_manifest,
    publish_dataset,
    session_lock,
    sha256_file,
    verify_session,
)
from spx_dagster.core.storage import verify as verify_module
from spx_dagster.core.storage.manifest import write_manifest
from spx_dagster_tests.core.storage_publish_worker import (
    DATASETS,
    manifest_of,
    publish_version,
    version_tables,
)

SESSION = dt.date(2024, 3, 15)
VERSIONS = Versions("0.1.0", "test", "test", "test-calendar")
REPO = Path(__file__).resolve().parents[2]


def visible_files(output: Path, dataset: str) -> list[Path]:
    """The files the README's glob ``<output_dir>/<dataset>/*/*.parquet`` matches."""
    return sorted(output.glob(f"{dataset}/*/*.parquet"))


def readme_rows(output: Path, dataset: str) -> int:
    """Rows of the session a researcher reads with DuckDB over the README's glob (0: none)."""
    if not visible_files(output, dataset):
        return 0  # DuckDB refuses a glob that matches nothing
    pattern = f"{output}/{dataset}/*/*.parquet"
    with duckdb.connect() as connection:
        return connection.execute(
            f"SELECT count(*) FROM read_parquet('{pattern}', hive_partitioning = true) "
            f"WHERE date = DATE '{SESSION}'"
        ).fetchone()[0]


def version_rows(version: str) -> dict[str, int]:
    return {ds: sum(t.num_rows for t in version_tables(SESSION, version)[ds]) for ds in DATASETS}


def killed_before_commit(output: Path, version: str) -> None:
    """A separate process writes every data file of ``version`` and is SIGKILLed before it
    commits the manifest (the worker stops there and waits for its kill)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spx_dagster_tests.core.storage_publish_worker",
            str(output),
            SESSION.isoformat(),
            f"stall-before-commit-{version}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines == ["ready", "data-written"], (lines, proc.stderr.read())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def test_a_first_publish_killed_before_its_commit_shows_no_rows(tmp_path: Path) -> None:
    output = tmp_path / "out"
    killed_before_commit(output, "A")
    assert load_manifest(output, SESSION) is None
    for dataset in DATASETS:
        assert visible_files(output, dataset) == []
        assert readme_rows(output, dataset) == 0
    # Nothing visible and nothing committed: verify drops what the kill left and finds no fault.
    report = verify_session(output, SESSION)
    assert {p.kind for p in report.errors} == {ProblemKind.MISSING_MANIFEST}


def test_a_republish_killed_before_its_commit_keeps_exactly_the_old_rows(tmp_path: Path) -> None:
    output = tmp_path / "out"
    old = publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    killed_before_commit(output, "B")
    assert load_manifest(output, SESSION).files == old.files
    for dataset in DATASETS:
        assert readme_rows(output, dataset) == version_rows("A")[dataset]
        assert [sha256_file(p) for p in visible_files(output, dataset)] == [
            f.sha256 for f in old.datasets[dataset].files
        ]
    assert verify_session(output, SESSION).errors == []


def test_a_publish_killed_after_its_commit_is_rolled_forward_by_verify(tmp_path: Path) -> None:
    output = tmp_path / "out"
    publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    new_tables = version_tables(SESSION, "B")
    with session_lock(output, SESSION):
        entries = {ds: publish_dataset(output, SESSION, ds, new_tables[ds]) for ds in DATASETS}
        new = manifest_of(SESSION, entries, VERSIONS)
        write_manifest(output, new)  # the commit, and the process dies before its renames
    # Until the renames happen readers keep the rows of the manifest committed before.
    for dataset in DATASETS:
        assert readme_rows(output, dataset) == version_rows("A")[dataset]
    report = verify_session(output, SESSION)
    assert report.ok, report.to_dict()
    assert ProblemKind.INTERRUPTED_PUBLISH in {p.kind for p in report.warnings}
    for dataset in DATASETS:
        assert readme_rows(output, dataset) == version_rows("B")[dataset]
    assert verify_session(output, SESSION).problems == []


def test_verify_holds_off_a_republish_instead_of_reporting_false_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    hashing, go_on = threading.Event(), threading.Event()
    real_sha256 = verify_module.sha256_file

    def paused_sha256(path: Path, **kw) -> str:
        hashing.set()
        go_on.wait(timeout=30)
        return real_sha256(path, **kw)

    monkeypatch.setattr(verify_module, "sha256_file", paused_sha256)
    reports = []
    checker = threading.Thread(target=lambda: reports.append(verify_session(output, SESSION)))
    checker.start()
    assert hashing.wait(timeout=30)
    # verify is between reading the manifest and hashing the first file: no publish may start.
    publisher = threading.Thread(
        target=publish_version, args=(output, SESSION, version_tables(SESSION, "B"), VERSIONS)
    )
    publisher.start()
    publisher.join(timeout=1.0)
    held_off = publisher.is_alive()  # waiting for verify's shared lock, not replacing files
    go_on.set()
    checker.join(timeout=60)
    publisher.join(timeout=60)
    assert reports, "verify crashed while the session was re-published"
    assert reports[0].problems == [], reports[0].to_dict()
    assert held_off
    monkeypatch.setattr(verify_module, "sha256_file", real_sha256)
    # Once verify was done, the re-publish went through and verifies clean.
    after = verify_session(output, SESSION)
    assert after.problems == [] and after.manifest.files != reports[0].manifest.files


def test_a_file_no_manifest_lists_is_an_error_with_the_command_that_removes_it(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    manifest = publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    listed = output / manifest.datasets["greeks"].files[0].path
    stray = listed.with_name("greeks-0123456789abcdef.parquet")
    stray.write_bytes(listed.read_bytes())  # a reader globbing greeks now counts rows twice
    report = verify_session(output, SESSION)
    assert not report.ok and report.status == "corrupt"
    [orphan] = [p for p in report.errors if p.kind == ProblemKind.ORPHAN_FILE]
    assert orphan.path.endswith(stray.name)
    assert f"spx-data verify {SESSION} --remove-orphans" in orphan.message
    # The next publish of the session removes it.
    publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    assert not stray.exists()
    assert verify_session(output, SESSION).problems == []


def test_commit_refuses_a_manifest_whose_files_are_not_there(tmp_path: Path) -> None:
    output = tmp_path / "out"
    old = publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    with session_lock(output, SESSION):
        entries = {
            ds: publish_dataset(output, SESSION, ds, version_tables(SESSION, "B")[ds])
            for ds in DATASETS
        }
        entries["greeks"].files[0].bytes += 1
        with pytest.raises(Exception, match="does not match the files on disk"):
            commit_manifest(output, manifest_of(SESSION, entries, VERSIONS))
    assert load_manifest(output, SESSION).files == old.files
    assert verify_session(output, SESSION).errors == []
