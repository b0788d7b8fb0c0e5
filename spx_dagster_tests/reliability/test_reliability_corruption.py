"""Bit rot in published sessions: found by every check, shown as corrupt, restored by retry.

Real sessions are published through the CLI, then damaged on disk the way storage fails: a
flipped byte inside a data file, a flipped byte in a checksum sidecar. ``spx-data verify``,
``sha256sum -c`` and the Dagster ``checksums_match`` check must all report the damage,
``spx-data gaps`` must list the sessions as ``corrupt``, and ``spx-data retry`` must restore
them byte for byte, leaving the healthy session alone.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from spx_dagster.core.storage import load_manifest, verify_session
from spx_dagster.defs.constants import CHECKSUM_CHECK
from spx_dagster_tests.reliability.support import (
    invoke,
    published_tree_problems,
    sha256,
    tree_snapshot,
)

pytestmark = pytest.mark.slow

DATA_ROT = dt.date(2024, 11, 4)  # a byte flipped inside its greeks parquet
SIDECAR_ROT = dt.date(2024, 11, 5)  # a byte flipped inside its eod .sha256 sidecar
HEALTHY = dt.date(2024, 11, 6)
RANGE = ("--from", "2024-11-04", "--to", "2024-11-06")


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def published(output_dir: Path, day: dt.date, dataset: str) -> Path:
    return output_dir / load_manifest(output_dir, day).datasets[dataset].files[0].path


def sha256sum_check(directory: Path) -> subprocess.CompletedProcess:
    """``sha256sum -c`` over every sidecar of a session directory, as a user would run it."""
    sidecars = sorted(p.name for p in directory.glob("*.sha256"))
    return subprocess.run(
        ["sha256sum", "-c", *sidecars], cwd=directory, capture_output=True, text=True
    )


def checksum_check_status(day: dt.date):
    infos = dg.DagsterInstance.get().event_log_storage.get_asset_check_partition_info(
        [CHECKSUM_CHECK]
    )
    return {i.partition_key: i.latest_execution_status for i in infos}[day.isoformat()]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_flipped_bytes_are_found_shown_as_corrupt_and_restored_by_retry(pipeline_home):
    output_dir = pipeline_home.output_dir
    for day in (DATA_ROT, SIDECAR_ROT, HEALTHY):
        assert invoke("process", day.isoformat()).exit_code == 0
    pristine = tree_snapshot(output_dir)

    data_file = published(output_dir, DATA_ROT, "greeks")
    flip_byte(data_file, data_file.stat().st_size // 2)
    sidecar = published(output_dir, SIDECAR_ROT, "eod").with_name(
        published(output_dir, SIDECAR_ROT, "eod").name + ".sha256"
    )
    flip_byte(sidecar, 10)  # inside the hex digest
    healthy_files = {k: v for k, v in pristine.items() if HEALTHY.isoformat() in k}

    # verify: exit 1, each damaged file named with the kind of damage; the healthy one ok.
    found = invoke("verify", "--all", "--json")
    assert found.exit_code == 1, found.output
    results = {r["session"]: r for r in json.loads(found.stdout)["results"]}
    assert results[HEALTHY.isoformat()]["ok"] is True
    problems = {
        day: [(p["kind"], p["path"]) for p in results[day.isoformat()]["problems"]]
        for day in (DATA_ROT, SIDECAR_ROT)
    }
    rel = data_file.relative_to(output_dir).as_posix()
    assert problems[DATA_ROT] == [("checksum_mismatch", rel)]
    [(kind, path)] = problems[SIDECAR_ROT]
    assert "sidecar" in kind and path.startswith("eod/"), problems[SIDECAR_ROT]
    human = invoke("verify", "--all")
    assert "spx-data process DATE --force" in human.stdout and rel in human.stdout

    # sha256sum -c (the sidecars' documented use) agrees.
    assert sha256sum_check(data_file.parent).returncode == 1
    assert sha256sum_check(sidecar.parent).returncode != 0
    assert sha256sum_check(published(output_dir, HEALTHY, "greeks").parent).returncode == 0

    # Dagster's checksums_match check and the gap analysis show both as corrupt.
    failed = AssetCheckExecutionRecordStatus.FAILED
    assert checksum_check_status(DATA_ROT) == failed
    assert checksum_check_status(SIDECAR_ROT) == failed
    assert checksum_check_status(HEALTHY) == AssetCheckExecutionRecordStatus.SUCCEEDED
    gaps = json.loads(invoke("gaps", *RANGE, "--json").stdout)
    assert {g["session"]: g["kind"] for g in gaps["sessions"]} == {
        DATA_ROT.isoformat(): "corrupt",
        SIDECAR_ROT.isoformat(): "corrupt",
    }
    # `process` does not take a corrupt session for complete: it publishes it again.
    reprocessed = invoke("process", DATA_ROT.isoformat(), "--json")
    assert json.loads(reprocessed.stdout)["status"] == "success", reprocessed.output
    assert verify_session(output_dir, DATA_ROT).ok
    flip_byte(data_file, data_file.stat().st_size // 2)  # damage it again for retry to fix
    assert invoke("verify", DATA_ROT.isoformat()).exit_code == 1  # recorded for gaps and retry

    # retry --all-failed re-publishes exactly the corrupt ones, byte for byte as before.
    plan = json.loads(invoke("retry", "--all-failed", "--dry-run", "--json").stdout)
    assert {p["session"]: p["state"] for p in plan["sessions"]} == {
        DATA_ROT.isoformat(): "corrupt",
        SIDECAR_ROT.isoformat(): "corrupt",
    }
    retried = invoke("retry", "--all-failed")
    assert retried.exit_code == 0, retried.output
    restored = tree_snapshot(output_dir)
    assert restored == pristine | {
        k: v for k, v in restored.items() if k.startswith("_manifests/")
    }, "the data files and sidecars are not back to what was published"
    assert sha256(data_file) == pristine[rel]
    assert {k: v for k, v in restored.items() if HEALTHY.isoformat() in k} == healthy_files
    assert invoke("verify", "--all").exit_code == 0
    assert checksum_check_status(DATA_ROT) == AssetCheckExecutionRecordStatus.SUCCEEDED
    assert json.loads(invoke("gaps", *RANGE, "--json").stdout)["sessions"] == []
    assert published_tree_problems(output_dir) == []
