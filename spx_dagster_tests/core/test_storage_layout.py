"""``core.storage.layout``: one resolved layout gives every documented path (DESIGN.md's
contract), from a path, ``~`` or a ``file://`` URI alike, and refuses an object store with the
fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from spx_dagster.core.config import load_settings
from spx_dagster.core.storage import UnsupportedStorageLocation
from spx_dagster.core.storage.layout import OutputLayout, PartKey, StorageLayout, TempLayout

DAY = dt.date(2024, 3, 15)


def test_the_published_paths_are_the_documented_ones(tmp_path) -> None:
    out = OutputLayout.of(tmp_path / "data")
    root = tmp_path / "data"
    assert out.root == root
    assert out.published_file("greeks", DAY) == root / "greeks/date=2024-03-15/greeks.parquet"
    assert out.manifest_path(DAY) == root / "_manifests/date=2024-03-15.json"
    assert out.quarantine_file(DAY, "eod") == root / "_quarantine/date=2024-03-15/eod.parquet"
    assert out.lock_file(DAY) == root / "_locks/date=2024-03-15.lock"
    final = out.published_file("greeks", DAY)
    pending = out.pending_path(DAY, final)
    assert pending == root / "_pending/date=2024-03-15/greeks/date=2024-03-15/greeks.parquet"
    assert out.final_path(DAY, pending) == final
    assert out.relative_to_output(final) == "greeks/date=2024-03-15/greeks.parquet"


def test_the_temp_paths_and_parts(tmp_path) -> None:
    temp = TempLayout.of(tmp_path / "tmp")
    part = PartKey("SPXW", dt.date(2024, 3, 22))
    staged = temp.staged_file(DAY, "greeks", part)
    assert staged == tmp_path / "tmp/staging/date=2024-03-15/greeks/SPXW_2024-03-22.arrow"
    assert temp.validated_file(DAY, "greeks", part).parts[-4:] == (
        "validated",
        "date=2024-03-15",
        "greeks",
        "SPXW_2024-03-22.arrow",
    )
    staged.parent.mkdir(parents=True)
    # Parts are Arrow IPC files: temp files, a parquet file or a stray are not parts.
    for name in (
        "SPXW_2024-03-22.arrow",
        "SPX_ALL.arrow",
        ".tmp-SPX_ALL.arrow-1",
        "SPXW_2024-03-29.parquet",
        "x.txt",
    ):
        (staged.parent / name).write_bytes(b"")
    assert temp.staged_parts(DAY, "greeks") == [PartKey("SPX", None), part]
    assert temp.session_temp_dirs(DAY) == [temp.staging_dir(DAY), temp.validated_dir(DAY)]


def test_one_resolution_from_a_path_a_tilde_or_a_file_uri(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    by_path = StorageLayout.resolve(tmp_path / "data", tmp_path / "tmp")
    by_uri = StorageLayout.resolve(f"file://{tmp_path}/data", f"file://localhost{tmp_path}/tmp")
    by_tilde = StorageLayout.resolve("~/data", "~/tmp")
    assert by_path == by_uri == by_tilde
    assert OutputLayout.of(by_path.output) is by_path.output  # already resolved: kept
    monkeypatch.setenv("SPX_DATA_STORAGE__OUTPUT_DIR", f"file://{tmp_path}/data")
    monkeypatch.setenv("SPX_DATA_STORAGE__TEMP_DIR", str(tmp_path / "tmp"))
    assert StorageLayout.from_settings(load_settings().storage) == by_path


def test_an_object_store_is_refused_with_the_fix() -> None:
    with pytest.raises(UnsupportedStorageLocation, match="shared POSIX filesystem"):
        OutputLayout.of("s3://bucket/spx")
    assert isinstance(OutputLayout.of(Path("relative/data")).root, Path)
