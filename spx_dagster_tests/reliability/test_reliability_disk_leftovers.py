"""Temp stages and a full disk (issue 11: on 43668ef a run that failed for disk space left its temp
stages behind, and every later session was refused without saying why).

Real small filesystems (tmpfs mounts), the real CLI, the tiny simulator over HTTP. A run that
fails for space on the filesystem of ``storage.temp_dir`` removes its session's temp stages; a
refusal names the temp stages that occupy the short filesystem (which sessions, their size) and
the command that frees them.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess

import dagster as dg
import pytest

from spx_dagster.core.progress import ProgressSnapshot, add_listener, remove_listener
from spx_dagster.core.storage import load_manifest
from spx_dagster.core.storage.layout import TempLayout
from spx_dagster.defs.assets import raw_option_chains
from spx_dagster_tests.defs.test_assets_pipeline import resources
from spx_dagster_tests.reliability.support import invoke
from spx_dagster_tests.reliability.test_reliability_disk_full import fill, mount_tmpfs

pytestmark = pytest.mark.slow

BEFORE = dt.date(2024, 11, 4)  # published on a roomy disk: gives the size estimate a history
VICTIM = dt.date(2024, 11, 5)  # meets the full disk
LATER = dt.date(2024, 11, 6)  # the next session

__all__ = ["mount_tmpfs"]  # the fixture, used by name


@pytest.fixture
def small_disk(pipeline_home, mount_tmpfs, monkeypatch):
    """Output and temp directories on one 16 MB tmpfs, holding one session published before."""
    assert invoke("process", BEFORE.isoformat()).exit_code == 0
    disk = mount_tmpfs("disk", "16m")
    shutil.copytree(pipeline_home.output_dir, disk / "data")
    monkeypatch.setenv("SPX_DATA_STORAGE__OUTPUT_DIR", str(disk / "data"))
    monkeypatch.setenv("SPX_DATA_STORAGE__TEMP_DIR", str(disk / "tmp"))
    return disk


def test_a_run_that_fails_for_space_removes_its_temp_stages(small_disk):
    filler = []

    def fill_during_fetch(snapshot: ProgressSnapshot) -> None:
        if snapshot.stage == "fetch" and snapshot.done >= 1 and not filler:
            filler.append(fill(small_disk, 16 << 10))

    add_listener(fill_during_fetch)
    try:
        result = invoke("process", VICTIM.isoformat())
    finally:
        remove_listener(fill_during_fetch)

    assert filler, "the run never staged an answer"
    assert result.exit_code == 1, result.output
    assert "(disk_full)" in result.stderr, result.stderr
    assert [
        d for d in TempLayout.of(small_disk / "tmp").session_temp_dirs(VICTIM) if d.exists()
    ] == []

    # The space is back: the next session is not refused for what the failed run held.
    filler[0].unlink()
    later = invoke("process", LATER.isoformat())
    assert later.exit_code == 0, later.output


def test_a_refusal_names_the_temp_stages_on_the_disk_and_how_to_free_them(small_disk):
    # An earlier run of VICTIM fetched and stopped there (as a crash or a kill leaves it).
    with dg.instance_for_test() as instance:
        fetched = dg.materialize(
            [raw_option_chains],
            partition_key=VICTIM.isoformat(),
            instance=instance,
            resources=resources(),
        )
        assert fetched.success
    stages = [d for d in TempLayout.of(small_disk / "tmp").session_temp_dirs(VICTIM) if d.exists()]
    assert stages
    fill(small_disk, 1 << 20)  # less than a session needs

    result = invoke("process", LATER.isoformat())

    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    print(f"\nrefused with leftovers:\n{result.stderr.strip()}")
    assert "not enough free disk space" in message
    held = re.search(rf"runs that did not publish hold [\d.]+ (B|kB|MB): {VICTIM} \(", message)
    assert held, message
    command = re.search(r"`(rm -rf -- [^`]+)`", message)
    assert command, message
    for stage in stages:
        assert str(stage) in command.group(1)
    subprocess.run(command.group(1), shell=True, check=True)
    assert [d for d in stages if d.exists()] == []


def test_without_history_the_estimate_comes_from_the_listing(
    pipeline_home, mount_tmpfs, monkeypatch
):
    """Issue 11: on 43668ef the first session was estimated at 1.2 GB whatever the chain said
    (the tiny chain publishes well under 1 MB), so a small disk could never start."""
    disk = mount_tmpfs("first", "24m")
    monkeypatch.setenv("SPX_DATA_STORAGE__OUTPUT_DIR", str(disk / "data"))
    monkeypatch.setenv("SPX_DATA_STORAGE__TEMP_DIR", str(disk / "tmp"))

    result = invoke("process", VICTIM.isoformat())

    assert result.exit_code == 0, result.output
    manifest = load_manifest(disk / "data", VICTIM)
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["spx", "raw_option_chains"]))
    estimate = event.asset_materialization.metadata["disk_estimate_bytes"].value
    # From contracts × rows × bytes per row: no smaller than what was published, nor far above.
    assert manifest.bytes <= estimate <= 20 * manifest.bytes
