"""Atomic writes, layout names, disk space checks and cleanup helpers on real files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from spx_dagster.core.storage import (
    InsufficientDiskSpace,
    PartKey,
    atomic_write_bytes,
    atomic_writer,
    check_free_space,
    check_session_space,
    estimate_session_bytes,
    find_tmp_leftovers,
    remove_session_temp,
    remove_tmp_leftovers,
    sha256_file,
    write_checksum_sidecar,
)
from spx_dagster.core.storage.atomic import read_checksum_sidecar
from spx_dagster.core.storage.disk import DEFAULT_SESSION_BYTES, GB
from spx_dagster.core.storage.layout import TempLayout

SESSION = dt.date(2024, 3, 15)


def test_atomic_writer_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert find_tmp_leftovers(tmp_path) == []
    digest = atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert digest == hashlib.sha256(b"new content").hexdigest()


def test_streamed_hash_matches_chunked_file_hash(tmp_path: Path) -> None:
    payload = os.urandom(3 * (1 << 20) + 12345)  # more than one 1 MiB chunk
    target = tmp_path / "big.bin"
    with atomic_writer(target) as out:
        for i in range(0, len(payload), 70_000):
            out.write(payload[i : i + 70_000])
    assert out.size == len(payload)
    assert out.sha256 == sha256_file(target) == hashlib.sha256(payload).hexdigest()


def test_checksum_sidecar_format(tmp_path: Path) -> None:
    target = tmp_path / "greeks-0123.parquet"
    target.write_bytes(b"data")
    sidecar = write_checksum_sidecar(target, sha256_file(target))
    assert sidecar.name == "greeks-0123.parquet.sha256"
    assert sidecar.read_text() == f"{hashlib.sha256(b'data').hexdigest()}  greeks-0123.parquet\n"
    assert read_checksum_sidecar(target) == (hashlib.sha256(b"data").hexdigest(), target.name)


def test_part_names_round_trip_and_sort_in_published_order(tmp_path: Path) -> None:
    parts = [
        PartKey("SPXW", dt.date(2024, 3, 18)),
        PartKey("SPX", dt.date(2024, 3, 15)),
        PartKey("SPXW", None),
        PartKey("SPXW", dt.date(2024, 3, 15), "C"),
    ]
    for part in parts:
        assert PartKey.parse(part.filename) == part
        path = TempLayout.of(tmp_path).staged_file(SESSION, "greeks", part)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (path.parent / ".tmp-SPX_2024-03-20.arrow-x").write_bytes(b"")
    assert TempLayout.of(tmp_path).staged_file(SESSION, "greeks", parts[0]) == (
        tmp_path / "staging" / "date=2024-03-15" / "greeks" / "SPXW_2024-03-18.arrow"
    )
    assert [p.stem for p in TempLayout.of(tmp_path).staged_parts(SESSION, "greeks")] == [
        "SPX_2024-03-15",
        "SPXW_ALL",
        "SPXW_2024-03-15_C",
        "SPXW_2024-03-18",
    ]
    with pytest.raises(ValueError, match=r"SPXW_2024-03-15\.arrow"):
        PartKey.parse("spxw-20240315.parquet")


def test_check_free_space_names_path_free_and_need(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    # A path that does not exist yet is measured on its nearest existing ancestor.
    assert check_free_space(tmp_path / "not" / "yet", 1_000, min_free_gb=0) > 1_000
    with pytest.raises(InsufficientDiskSpace) as caught:
        check_free_space(tmp_path, free + 10 * GB, min_free_gb=1)
    message = str(caught.value)
    assert str(tmp_path) in message and "free" in message and "storage.min_free_gb" in message
    assert caught.value.need == free + 10 * GB
    with pytest.raises(InsufficientDiskSpace):
        check_free_space(tmp_path, 0, min_free_gb=free / GB + 1)  # the reserve alone is too big
    with pytest.raises(InsufficientDiskSpace):
        # Same filesystem: published bytes plus the temp copies must fit together.
        check_session_space(tmp_path / "out", tmp_path / "tmp", free // 2, min_free_gb=0)
    check_session_space(tmp_path / "out", tmp_path / "tmp", 1_000, min_free_gb=0)


def test_estimate_session_bytes_defaults_history_and_interval() -> None:
    default = estimate_session_bytes(["greeks", "eod", "open_interest"])
    assert default == sum(DEFAULT_SESSION_BYTES[d] for d in ("greeks", "eod", "open_interest"))
    assert 100_000_000 < DEFAULT_SESSION_BYTES["greeks"] < 1_000_000_000
    assert estimate_session_bytes(["greeks"], interval="1s") == 60 * DEFAULT_SESSION_BYTES["greeks"]
    assert estimate_session_bytes(["eod"], interval="1s") == DEFAULT_SESSION_BYTES["eod"]
    history = [{"greeks": 200_000_000, "eod": 1_000_000}, {"greeks": 240_000_000}]
    assert estimate_session_bytes(["greeks", "eod"], history) == int(240e6 * 1.25) + int(1e6 * 1.25)


def test_cleanup_helpers(tmp_path: Path) -> None:
    staged = TempLayout.of(tmp_path).staged_file(SESSION, "eod", PartKey("SPX", None))
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"x")
    validated = tmp_path / "validated" / "date=2024-03-15" / "eod"
    validated.mkdir(parents=True)
    other = TempLayout.of(tmp_path).staged_file(dt.date(2024, 3, 14), "eod", PartKey("SPX", None))
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    assert len(remove_session_temp(tmp_path, SESSION)) == 2
    assert not staged.exists() and not validated.exists() and other.exists()

    fresh, stale = tmp_path / "a" / ".tmp-fresh", tmp_path / "a" / ".tmp-stale"
    fresh.parent.mkdir()
    fresh.write_bytes(b"")
    stale.write_bytes(b"")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert remove_tmp_leftovers(tmp_path, older_than_s=3600) == [stale]
    assert remove_tmp_leftovers(tmp_path) == [fresh]
