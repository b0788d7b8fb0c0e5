"""Quarantine files change only with the manifest commit (issue 12, observation 2).

Real simulator over HTTP, real pipeline stages, a real second process holding the session lock.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spx_dagster.core.session_stages import fetch_session, publish_session, validate_session
from spx_dagster.core.storage import SessionLocked, load_manifest, verify_session
from spx_dagster.core.storage.verify import ProblemKind
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster_tests.core.test_quarantine_malformed import (
    SESSION,
    first_expiration,
    inject_bad_lines,
    run_stages,
    stage_settings,
)

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def lock_held_elsewhere(output_dir: Path, session) -> Iterator[None]:
    """Another process holds the session lock for the block (and is SIGKILLed after it)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spx_dagster_tests.core.storage_publish_worker",
            str(output_dir),
            session.isoformat(),
            "hold",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_failed_forced_rerun_leaves_the_published_quarantine_as_its_manifest_lists_it(
    pipeline_home, tiny_simulator
):
    settings, cfg = stage_settings()
    with ThetaClient.from_settings(settings) as client:
        expiration = first_expiration(client, cfg)
    inject_bad_lines(tiny_simulator, expiration)
    _, _, faulty = run_stages()
    published = faulty.manifest
    quarantined = {
        ds: pipeline_home.output_dir / e.quarantine_path
        for ds, e in published.datasets.items()
        if e.quarantine_path
    }
    assert quarantined and all(p.exists() for p in quarantined.values())
    before = {ds: pq.read_table(p) for ds, p in quarantined.items()}

    # A forced re-run whose answers are clean, validated, then refused the lock at publish: the
    # published session, its quarantine included, must stay exactly as its manifest says.
    tiny_simulator.clear_faults()
    with ThetaClient.from_settings(settings) as client:
        fetch_session(client, cfg, SESSION)
    assert validate_session(cfg, SESSION).quarantine == {}
    with lock_held_elsewhere(cfg.output_dir, SESSION), pytest.raises(SessionLocked):
        publish_session(cfg, SESSION, lock_timeout_s=0.5)
    assert load_manifest(cfg.output_dir, SESSION).datasets == published.datasets
    for ds, path in quarantined.items():
        assert path.exists(), f"{path} is gone while the manifest still lists it"
        assert pq.read_table(path).equals(before[ds])
    assert verify_session(cfg.output_dir, SESSION).errors == []

    # The re-run, published once the lock is free, commits the empty quarantine with the data.
    clean = publish_session(cfg, SESSION)
    assert clean.manifest.quarantined_rows == 0
    assert not any(p.exists() for p in quarantined.values())
    assert verify_session(cfg.output_dir, SESSION).problems == []


def test_verify_checks_the_quarantine_files_the_manifest_lists(pipeline_home, tiny_simulator):
    settings, cfg = stage_settings()
    with ThetaClient.from_settings(settings) as client:
        expiration = first_expiration(client, cfg)
    inject_bad_lines(tiny_simulator, expiration)
    _, _, faulty = run_stages()
    entry = next(e for e in faulty.manifest.datasets.values() if e.quarantine_path)
    path = pipeline_home.output_dir / entry.quarantine_path
    assert entry.quarantine_bytes == path.stat().st_size and entry.quarantine_sha256

    with open(path, "r+b") as f:  # the same size, one byte different
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    report = verify_session(cfg.output_dir, SESSION)
    assert [p.kind for p in report.errors] == [ProblemKind.QUARANTINE_MISMATCH]
    assert report.status == "corrupt"

    path.unlink()
    report = verify_session(cfg.output_dir, SESSION)
    assert [p.kind for p in report.errors] == [ProblemKind.MISSING_QUARANTINE]
    assert "--force" in report.errors[0].message
