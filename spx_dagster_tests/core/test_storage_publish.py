"""Publishing, manifests and verification on real files (real pyarrow, real sha256sum)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from spx_dagster.core.datasets import DATASETS, SCHEMA_VERSION
from spx_dagster.core.storage import (
    STATUS_NO_DATA,
    DatasetEntry,
    FileEntry,
    Manifest,
    ManifestError,
    ProblemKind,
    PublishError,
    SourceInfo,
    Versions,
    cleanup_orphans,
    commit_manifest,
    iter_validated_tables,
    load_manifest,
    publish_dataset,
    published_sessions,
    read_manifest,
    remove_session_temp,
    session_lock,
    verify_all,
    verify_session,
)
from spx_dagster.core.storage import manifest as manifest_module
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.core.storage.manifest import MANIFEST_VERSION
from spx_dagster.core.validation import (
    QUALITY_WEIGHTS,
    QualityAccumulator,
    ValidationContext,
    validate_staged_dataset,
)
from spx_dagster_tests.core.storage_publish_worker import version_tables
from spx_dagster_tests.factories import make_table, stage_session

SESSION = dt.date(2024, 3, 15)
VERSIONS = Versions("0.1.0", "test", "test", "test-calendar")
SOURCE = SourceInfo("simulator", "http://127.0.0.1:25503", "v3")


def _manifest(session: dt.date, entries: dict[str, DatasetEntry], **kw) -> Manifest:
    return Manifest(session=session, source=SOURCE, versions=VERSIONS, datasets=entries, **kw)


def _publish(output: Path, session: dt.date, tables: dict[str, list[pa.Table]]) -> Manifest:
    with session_lock(output, session):
        entries = {
            ds: publish_dataset(output, session, ds, chunks) for ds, chunks in tables.items()
        }
        manifest = _manifest(session, entries, roots=["SPXW"])
        commit_manifest(output, manifest)
    return manifest


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture()
def output(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_end_to_end_stage_validate_publish_verify(tmp_path: Path, output: Path) -> None:
    temp = tmp_path / "tmp"
    listed = stage_session(temp, SESSION, ("greeks", "eod", "open_interest"))
    quality = QualityAccumulator(listed)
    context = ValidationContext(SESSION)
    for ds in ("greeks", "eod", "open_interest"):
        validate_staged_dataset(temp, SESSION, ds, context, quality)
    report = quality.report()
    with session_lock(output, SESSION):
        entries = {
            ds: publish_dataset(output, SESSION, ds, iter_validated_tables(temp, SESSION, ds))
            for ds in ("greeks", "eod", "open_interest")
        }
        commit_manifest(output, _manifest(SESSION, entries, quality=report.to_summary()))
    assert remove_session_temp(temp, SESSION)
    assert not (temp / "staging" / f"date={SESSION}").exists()

    verdict = verify_session(output, SESSION)
    assert verdict.ok and verdict.problems == [] and verdict.status == "complete"
    assert report.parts["validity"] == report.parts["expiration_coverage"] == 1.0
    assert report.parts["interval_completeness"] == 1.0
    assert report.parts["crossed_quote_rate"] == 0.0
    # Far wings are zero-quoted in the factory as in real chains: they cost little.
    assert 0 < report.parts["zero_quote_rate"] < 0.5
    # Every other part that applies is 1 (reconciliation needs a session: it does not apply).
    applies = sum(w for name, w in QUALITY_WEIGHTS.items() if report.parts[name] is not None)
    zero_cost = QUALITY_WEIGHTS["zero_quote_rate"] * report.parts["zero_quote_rate"] / applies
    assert report.score == pytest.approx(1 - zero_cost, abs=1e-6)

    # One file per dataset, sorted, zstd, typed, with the schema version in its metadata; a
    # hive-partitioned read of <dataset>/**/*.parquet sees the session date as a column.
    greeks_files = sorted((output / "greeks").glob("**/*.parquet"))
    assert len(greeks_files) == 1
    meta = pq.read_metadata(greeks_files[0])
    assert meta.metadata[b"spx_data.schema_version"] == str(SCHEMA_VERSION).encode()
    assert meta.metadata[b"spx_data.dataset"] == b"greeks"
    assert meta.metadata[b"spx_data.session"] == SESSION.isoformat().encode()
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.num_row_groups == 4  # one per staged response: 2 roots x 2 expirations
    table = pads.dataset(
        [str(p) for p in greeks_files],
        format="parquet",
        partitioning=pads.partitioning(flavor="hive"),
        partition_base_dir=str(output / "greeks"),
    ).to_table()
    assert table.num_rows == entries["greeks"].rows == 2 * 2 * 6 * 2 * 391
    assert table.schema.field("expiration").type == pa.date32()
    keys = DATASETS["greeks"].sort_keys
    rows = table.select(list(keys)).to_pylist()
    assert rows == sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    assert str(table["date"][0].as_py()) == SESSION.isoformat()


def test_sha256sum_check_passes_in_every_published_directory(output: Path) -> None:
    _publish(output, SESSION, version_tables(SESSION, "A"))
    for ds in ("greeks", "eod"):
        directory = OutputLayout.of(output).dataset_session_dir(ds, SESSION)
        sidecars = [p.name for p in directory.glob("*.sha256")]
        assert len(sidecars) == 1
        done = subprocess.run(
            ["sha256sum", "-c", *sidecars], cwd=directory, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert ": OK" in done.stdout


def test_files_and_directories_get_the_configured_modes(output: Path) -> None:
    old_umask = os.umask(0o077)  # a strict umask must not narrow the configured modes
    try:
        with session_lock(output, SESSION):
            entry = publish_dataset(
                output,
                SESSION,
                "eod",
                [make_table("eod", SESSION)],
                file_mode=0o644,
                dir_mode=0o755,
            )
            commit_manifest(output, _manifest(SESSION, {"eod": entry}), file_mode=0o644)
    finally:
        os.umask(old_umask)
    data = output / entry.files[0].path
    assert data.stat().st_mode & 0o777 == 0o644
    assert data.parent.stat().st_mode & 0o777 == 0o755
    assert OutputLayout.of(output).manifest_path(SESSION).stat().st_mode & 0o777 == 0o644


def _visible(output: Path) -> list[Path]:
    """What a reader following the README's glob sees."""
    return sorted(output.glob("*/date=*/*.parquet"))


def test_republish_replaces_each_file_by_one_rename_after_the_manifest(output: Path) -> None:
    old = _publish(output, SESSION, version_tables(SESSION, "A"))
    old_paths = [output / f.path for f in old.files]
    old_bytes = {p: p.read_bytes() for p in old_paths}
    new_tables = version_tables(SESSION, "B")
    with session_lock(output, SESSION):
        entries = {ds: publish_dataset(output, SESSION, ds, new_tables[ds]) for ds in new_tables}
        # The new files wait under _pending/: the glob sees the old session, byte for byte.
        assert _visible(output) == sorted(old_paths)
        assert all(p.read_bytes() == content for p, content in old_bytes.items())
        assert load_manifest(output, SESSION).files == old.files
        result = commit_manifest(output, _manifest(SESSION, entries))
    # One fixed name per dataset: the new file took the old one's place, nothing else is left.
    assert _visible(output) == sorted(old_paths)
    assert set(result.placed) >= set(old_paths)
    assert not (output / "_pending").exists() or not any((output / "_pending").iterdir())
    after = verify_session(output, SESSION)
    assert after.ok and after.problems == []
    assert (
        {f.sha256 for f in after.manifest.files}
        == {f.sha256 for e in entries.values() for f in e.files}
        != {f.sha256 for f in old.files}
    )


def test_same_content_republished_keeps_the_same_file(output: Path) -> None:
    first = _publish(output, SESSION, version_tables(SESSION, "A"))
    second = _publish(output, SESSION, version_tables(SESSION, "A"))
    assert [f.path for f in first.files] == [f.path for f in second.files]
    assert verify_session(output, SESSION).problems == []


def test_verify_reports_every_mismatch_and_orphans(output: Path) -> None:
    manifest = _publish(output, SESSION, version_tables(SESSION, "A"))
    greeks, eod = (output / manifest.datasets[ds].files[0].path for ds in ("greeks", "eod"))
    _flip_byte(greeks, greeks.stat().st_size // 2)
    eod.with_name(eod.name + ".sha256").write_text("0" * 64 + "  " + eod.name + "\n")
    orphan = greeks.with_name("greeks-0000000000000000.parquet")
    orphan.write_bytes(b"left by a crash")
    leftover = greeks.with_name(".tmp-greeks.parquet-abc")
    leftover.write_bytes(b"half")

    report = verify_session(output, SESSION)
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == sorted(
        [
            ProblemKind.CHECKSUM_MISMATCH,
            ProblemKind.SIDECAR_MISMATCH,
            ProblemKind.ORPHAN_FILE,
            ProblemKind.TMP_LEFTOVER,
        ]
    )
    assert report.status == "corrupt" and not report.ok
    checksum = next(p for p in report.problems if p.kind == ProblemKind.CHECKSUM_MISMATCH)
    assert checksum.path == manifest.datasets["greeks"].files[0].path
    assert "--force" in checksum.message

    greeks.write_bytes(greeks.read_bytes()[:-10])
    eod.unlink()
    kinds = {p.kind for p in verify_session(output, SESSION, checksums=False).problems}
    assert {ProblemKind.SIZE_MISMATCH, ProblemKind.MISSING_FILE} <= kinds


def test_cleanup_orphans_keeps_listed_files(output: Path) -> None:
    manifest = _publish(output, SESSION, version_tables(SESSION, "A"))
    directory = OutputLayout.of(output).dataset_session_dir("greeks", SESSION)
    (directory / "greeks-ffffffffffffffff.parquet").write_bytes(b"x")
    (directory / ".tmp-greeks.parquet-1").write_bytes(b"x")
    removed = cleanup_orphans(output, SESSION)
    assert {p.name for p in removed} == {"greeks-ffffffffffffffff.parquet", ".tmp-greeks.parquet-1"}
    assert verify_session(output, SESSION).problems == []
    assert all((output / f.path).exists() for f in manifest.files)


def test_session_without_manifest_is_missing_and_its_files_are_orphans(output: Path) -> None:
    # A file in a dataset directory that no manifest lists (an older spx-data, or a copy by hand)
    # is seen by every glob reader: an error, and the command that removes it is named.
    directory = OutputLayout.of(output).dataset_session_dir("eod", SESSION)
    directory.mkdir(parents=True)
    pq.write_table(make_table("eod", SESSION), directory / "eod-0123456789abcdef.parquet")
    report = verify_session(output, SESSION)
    assert report.status == "missing" and not report.ok
    assert {p.kind for p in report.errors} == {
        ProblemKind.MISSING_MANIFEST,
        ProblemKind.ORPHAN_FILE,
    }
    orphan = next(p for p in report.problems if p.kind == ProblemKind.ORPHAN_FILE)
    assert f"spx-data verify {SESSION} --remove-orphans" in orphan.message
    # verify_all finds sessions by their data too, not only by manifests.
    assert [r.session for r in verify_all(output)] == [SESSION]
    cleanup_orphans(output, SESSION)
    assert not OutputLayout.of(output).dataset_session_dir("eod", SESSION).exists()


def test_an_uncommitted_publish_is_invisible_and_dropped(output: Path) -> None:
    with session_lock(output, SESSION):
        publish_dataset(output, SESSION, "eod", [make_table("eod", SESSION)])
    assert _visible(output) == []
    [report] = verify_all(output)  # found by its pending files alone
    assert report.session == SESSION
    assert {p.kind for p in report.problems} == {
        ProblemKind.INTERRUPTED_PUBLISH,
        ProblemKind.MISSING_MANIFEST,
    }
    assert not (output / "_pending" / f"date={SESSION}").exists()


def test_no_data_session_is_a_manifest_without_files(output: Path) -> None:
    _publish(output, SESSION, version_tables(SESSION, "A"))
    manifest = _manifest(
        SESSION,
        {"greeks": DatasetEntry(), "eod": DatasetEntry()},
        status=STATUS_NO_DATA,
        no_data=4,
        requests=4,
    )
    with session_lock(output, SESSION):
        commit_manifest(output, manifest)
    report = verify_session(output, SESSION)
    assert report.ok and report.status == "no_data" and report.problems == []
    assert not list((output / "greeks").glob("**/*.parquet"))
    assert published_sessions(output)[SESSION].status == "no_data"


def test_commit_refuses_a_manifest_that_does_not_match_the_disk(output: Path) -> None:
    good = _publish(output, SESSION, version_tables(SESSION, "A"))
    bogus = _manifest(
        SESSION, {"eod": DatasetEntry([FileEntry("eod/x.parquet", 1, 10, "0" * 64)], 1)}
    )
    with pytest.raises(PublishError, match="does not exist"):
        commit_manifest(output, bogus)
    assert load_manifest(output, SESSION).files == good.files


def test_manifest_json_round_trip_and_version_guard(output: Path) -> None:
    manifest = _publish(output, SESSION, version_tables(SESSION, "A"))
    path = OutputLayout.of(output).manifest_path(SESSION)
    loaded = read_manifest(path)
    assert loaded == manifest
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["session"] == "2024-03-15"
    assert data["datasets"]["greeks"]["files"][0]["path"].startswith("greeks/date=2024-03-15/")
    data["manifest_version"] = MANIFEST_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="upgrade spx-data"):
        read_manifest(path)
    assert verify_session(output, SESSION).problems[0].kind == ProblemKind.UNREADABLE_MANIFEST
    assert published_sessions(output)[SESSION].status == "corrupt"


def test_published_sessions_reads_each_manifest_once_for_3000_sessions(
    output: Path, monkeypatch
) -> None:
    """The index answers a listing: a second listing reads no manifest, and a replaced manifest
    is the only one read again. Counted, not timed (``bench/interactive_latency.py`` times the
    same path): the real ``read_manifest`` is wrapped to count its calls."""
    reads: list[str] = []
    real_read = manifest_module.read_manifest

    def counted_read(path: Path):
        reads.append(Path(path).name)
        return real_read(path)

    monkeypatch.setattr(manifest_module, "read_manifest", counted_read)
    template = _manifest(
        SESSION,
        {"greeks": DatasetEntry([FileEntry("greeks/x.parquet", 10, 100, "a" * 64)], 10)},
        expirations={"SPXW": [SESSION + dt.timedelta(days=i) for i in range(60)]},
    ).to_dict()
    directory = output / "_manifests"
    directory.mkdir(parents=True)
    day = dt.date(2012, 1, 2)
    for _ in range(3000):
        template["session"] = day.isoformat()
        (directory / f"date={day}.json").write_text(json.dumps(template))
        day += dt.timedelta(days=1)
    first = published_sessions(output)
    assert len(reads) == 3000
    second = published_sessions(output)
    assert len(reads) == 3000, "a listing over an up-to-date index read manifests again"
    assert len(first) == len(second) == 3000
    assert first[dt.date(2012, 1, 2)].rows == 10
    # A replaced manifest is re-read, not served from the cache.
    template["session"] = "2012-01-02"
    template["datasets"]["greeks"]["rows"] = 99
    (directory / "date=2012-01-02.json.new").write_text(json.dumps(template))
    os.replace(directory / "date=2012-01-02.json.new", directory / "date=2012-01-02.json")
    assert published_sessions(output)[dt.date(2012, 1, 2)].rows == 99
    assert reads[3000:] == ["date=2012-01-02.json"]
