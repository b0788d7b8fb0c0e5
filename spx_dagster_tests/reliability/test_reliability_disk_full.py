"""A full disk: real small filesystems (tmpfs mounts with a size), the real CLI.

Two ways a disk is too small: known before any write (the session's estimated size does not fit:
refused up front) and found while writing (another process filled the disk after the check:
ENOSPC in the middle of publishing). Both must fail with exit 1 and a message that says it is
about space and what to do, publish nothing partial, and leave what was published before intact.

Needs ``mount -t tmpfs`` (root, or a container that allows it); skipped with the reason if not.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spx_dagster.core.progress import ProgressSnapshot, add_listener, remove_listener
from spx_dagster.core.storage import find_tmp_leftovers, load_manifest, verify_session
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG
from spx_dagster_tests.reliability.support import (
    invoke,
    published_tree_problems,
    session_runs,
    tree_snapshot,
)

pytestmark = pytest.mark.slow

BEFORE = dt.date(2024, 11, 4)  # published before the disk fills up
VICTIM = dt.date(2024, 11, 5)  # the session that meets the full disk
SPACE_WORDS = ("space", "ENOSPC", "disk")


@pytest.fixture
def mount_tmpfs(tmp_path) -> Iterator[Callable[[str, str], Path]]:
    """``mount_tmpfs(name, size)`` mounts a tmpfs of ``size`` (e.g. ``"3m"``) under tmp_path."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
        mounted.append(target)
        return target

    try:
        yield mount
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


def fill(directory: Path, leave_bytes: int) -> Path:
    """Fill ``directory``'s filesystem until ``leave_bytes`` are free; return the filler."""
    filler = directory / "filler.bin"
    chunk = b"\0" * (1 << 16)
    with open(filler, "ab") as out:
        while shutil.disk_usage(directory).free > leave_bytes + len(chunk):
            out.write(chunk)
            out.flush()
    return filler


def test_no_room_for_the_estimate_refuses_before_writing(pipeline_home, mount_tmpfs, monkeypatch):
    # Smaller than the session: the estimate from its listing (no history yet) cannot fit.
    small = mount_tmpfs("small", "512k")
    monkeypatch.setenv("SPX_DATA_STORAGE__OUTPUT_DIR", str(small / "data"))
    monkeypatch.setenv("SPX_DATA_STORAGE__TEMP_DIR", str(small / "tmp"))

    result = invoke("process", VICTIM.isoformat())

    assert result.exit_code == 1, result.output
    message = result.stderr
    print(f"\nno room for the estimate, exit {result.exit_code}:\n{message.strip()}")
    assert "(disk_full)" in message and "not enough free disk space" in message
    assert str(small) in message and "storage.min_free_gb" in message
    assert "what to try" in message and "freeing disk space" in message
    [run] = session_runs(VICTIM)
    assert run.tags[ERROR_CATEGORY_TAG] == "disk_full"
    # Refused up front: not a byte of the session was written.
    assert [p for p in small.rglob("*") if p.is_file()] == []


def test_disk_filled_during_the_run_fails_publish_and_damages_nothing(
    pipeline_home, mount_tmpfs, monkeypatch
):
    # A session published on a roomy disk gives the size estimate a history.
    assert invoke("process", BEFORE.isoformat()).exit_code == 0
    temp = mount_tmpfs("temp", "32m")
    out = mount_tmpfs("out", "3m")
    shutil.copytree(pipeline_home.output_dir, out, dirs_exist_ok=True)
    monkeypatch.setenv("SPX_DATA_STORAGE__OUTPUT_DIR", str(out))
    monkeypatch.setenv("SPX_DATA_STORAGE__TEMP_DIR", str(temp))
    assert verify_session(out, BEFORE).ok
    published_before = tree_snapshot(out)

    # The space check at the start of the fetch passes (2+ MB free, a session is ~0.7 MB); once
    # the session is validated another "process" takes all but 64 KB, so publishing runs out.
    filler: list[Path] = []

    def fill_after_validation(snapshot: ProgressSnapshot) -> None:
        if snapshot.stage == "validated" and not filler:
            filler.append(fill(out, 64 << 10))

    add_listener(fill_after_validation)
    try:
        result = invoke("process", VICTIM.isoformat())
    finally:
        remove_listener(fill_after_validation)

    assert filler, "the run never reached validated"
    assert result.exit_code == 1, result.output
    message = result.stderr
    print(f"\nENOSPC while publishing, exit {result.exit_code}:\n{message.strip()}")
    assert "(disk_full)" in message and "spx/options_parquet" in message, message
    assert any(word in message for word in SPACE_WORDS), message
    assert "freeing disk space" in message and f"spx-data retry {VICTIM}" in message
    [run] = session_runs(VICTIM)
    assert run.tags[ERROR_CATEGORY_TAG] == "disk_full"

    # Nothing of the victim is published or left half-written; what was there is intact.
    assert load_manifest(out, VICTIM) is None
    assert find_tmp_leftovers(out) == []
    after = tree_snapshot(out)
    assert {k: v for k, v in after.items() if k in published_before} == published_before
    assert invoke("verify", "--all").exit_code == 0
    filler[0].unlink()
    assert published_tree_problems(out) == []

    # With the space back, a retry publishes it from the staged answers.
    retried = invoke("retry", VICTIM.isoformat())
    assert retried.exit_code == 0, retried.output
    assert verify_session(out, VICTIM).ok
    assert published_tree_problems(out) == []
    assert invoke("verify", "--all").exit_code == 0
