"""Crash safety and locking with real processes: SIGKILL mid-publish, lock contention."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spx_dagster.core.storage import (
    SessionLocked,
    Versions,
    cleanup_orphans,
    session_lock,
    verify_session,
)
from spx_dagster_tests.core.storage_publish_worker import publish_version, version_tables

SESSION = dt.date(2024, 3, 15)
VERSIONS = Versions("0.1.0", "test", "test", "test-calendar")
REPO = Path(__file__).resolve().parents[2]


def _spawn(output: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spx_dagster_tests.core.storage_publish_worker",
            str(output),
            SESSION.isoformat(),
            mode,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen) -> subprocess.Popen:
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise AssertionError(f"worker did not start: {line!r} {proc.stderr.read()}")
    return proc


def _start_worker(output: Path, mode: str) -> subprocess.Popen:
    return _wait_ready(_spawn(output, mode))


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def version_hashes(tmp_path_factory) -> dict[str, frozenset[str]]:
    """The sha256 set of each complete version, published in-process (parquet is deterministic)."""
    hashes = {}
    for version in ("A", "B"):
        out = tmp_path_factory.mktemp(f"version-{version}")
        manifest = publish_version(out, SESSION, version_tables(SESSION, version), VERSIONS)
        hashes[version] = frozenset(f.sha256 for f in manifest.files)
    assert hashes["A"] != hashes["B"]
    return hashes


WORKERS_PER_ROUND = 6


@pytest.mark.parametrize(
    "seed", [*range(2), *(pytest.param(s, marks=pytest.mark.slow) for s in range(2, 10))]
)
def test_sigkill_mid_publish_leaves_the_old_or_the_new_session(
    tmp_path: Path, seed: int, version_hashes: dict[str, frozenset[str]]
) -> None:
    """Each round kills several concurrent workers (one session directory each) at random times."""
    rng = random.Random(seed)
    outputs = [tmp_path / f"out{i}" for i in range(WORKERS_PER_ROUND)]
    for output in outputs:
        publish_version(output, SESSION, version_tables(SESSION, "A"), VERSIONS)
    workers = [_wait_ready(p) for p in [_spawn(output, "loop") for output in outputs]]
    # Each worker republishes A and B back to back (~20-40 ms each): random delays land the
    # kills at random points of a publish (data write, rename, manifest, deletions).
    started = time.monotonic()
    delays = [rng.uniform(0.05, 0.8) for _ in workers]
    for delay, worker in sorted(zip(delays, workers, strict=True), key=lambda pair: pair[0]):
        time.sleep(max(0.0, started + delay - time.monotonic()))
        _kill(worker)

    for output in outputs:
        report = verify_session(output, SESSION)
        assert report.manifest is not None, report.to_dict()
        assert report.errors == [], report.to_dict()
        assert frozenset(f.sha256 for f in report.manifest.files) in set(version_hashes.values())
        # Whatever the crash left (orphans, .tmp- files) is a warning and goes away with
        # cleanup; the flock died with the worker, so cleanup gets the lock at once.
        cleanup_orphans(output, SESSION, lock_timeout_s=2)
        assert verify_session(output, SESSION).problems == []


def test_lock_contention_between_processes(tmp_path: Path) -> None:
    output = tmp_path / "out"
    holder = _start_worker(output, "hold")
    try:
        started = time.monotonic()
        with pytest.raises(SessionLocked) as caught, session_lock(output, SESSION, timeout_s=0.3):
            pass
        assert time.monotonic() - started >= 0.3
        message = str(caught.value)
        assert str(SESSION) in message and f"pid {holder.pid}" in message
        assert "wait for that run to finish" in message
    finally:
        _kill(holder)
    with session_lock(output, SESSION, timeout_s=2):
        pass  # released by the holder's death, no stale lock


def test_two_processes_publishing_the_same_session_never_interleave(
    tmp_path: Path, version_hashes: dict[str, frozenset[str]]
) -> None:
    output = tmp_path / "out"
    workers = [_wait_ready(p) for p in [_spawn(output, "loop") for _ in range(2)]]
    time.sleep(0.8)
    for worker in workers:
        _kill(worker)
    report = verify_session(output, SESSION)
    assert report.errors == [], report.to_dict()
    assert frozenset(f.sha256 for f in report.manifest.files) in set(version_hashes.values())
    assert os.path.exists(output / "_locks" / f"date={SESSION}.lock")
