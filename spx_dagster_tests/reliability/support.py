"""Pieces the reliability tests share: CLI calls, pipeline homes and the output-tree invariants.

Every check here reads real files (manifests, parquet, checksums) the way a user's tools would;
nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from click.testing import CliRunner, Result

from spx_dagster.cli.main import cli
from spx_dagster.core.storage import find_tmp_leftovers, load_manifest, verify_session
from spx_dagster.core.storage.layout import (
    CHECKSUM_SUFFIX,
    LOCKS_DIR,
    MANIFESTS_DIR,
    QUARANTINE_DIR,
    OutputLayout,
    parse_session_dirname,
)
from spx_dagster.defs.constants import SESSION_JOB

SPX_DATA = str(Path(sys.executable).with_name("spx-data"))
REPO = Path(__file__).resolve().parents[2]
# Settings every pipeline home of this suite uses: short client backoff so that the flaky and
# hostile profiles cost seconds, not minutes; no free-space floor (tmp dirs are small).
BASE_SETTINGS = {
    "SPX_DATA_THETADATA__BACKOFF_MAX_S": "0.05",
    "SPX_DATA_STORAGE__MIN_FREE_GB": "0",
    "SPX_DATA_PROCESSING__START_DATE": "2024-01-02",
    # The tiny chain is not the real listing (see spx_dagster_tests/conftest.py).
    "SPX_DATA_QUALITY__LISTING_RULES": "false",
}


def invoke(*args: str) -> Result:
    """``spx-data ARGS`` in this process (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def home_env(home: Path, base_url: str, **settings: str) -> dict[str, str]:
    """The environment of a fresh spx-data home pointing at the terminal at ``base_url``."""
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    env = {
        "SPX_DATA_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "SPX_DATA_THETADATA__BASE_URL": base_url,
        **BASE_SETTINGS,
    }
    env.update(settings)
    return env


def use_env(monkeypatch, env: Mapping[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def spawn_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """``spx-data ARGS`` as a real process (its own session, so a kill reaches it alone)."""
    return subprocess.Popen(
        [SPX_DATA, *args],
        env=dict(os.environ if env is None else env),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_snapshot(root: Path, *, skip: tuple[str, ...] = (LOCKS_DIR,)) -> dict[str, str]:
    """Relative path → sha256 of every file below ``root`` (lock files aside: taking a lock
    creates one, which changes nothing a reader sees)."""
    root = Path(root)
    if not root.exists():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in skip:
            out[rel.as_posix()] = sha256(path)
    return out


def session_runs(day: dt.date) -> list[dg.DagsterRun]:
    """Runs of the session job for ``day`` on the instance at ``DAGSTER_HOME``."""
    instance = dg.DagsterInstance.get()
    records = instance.get_run_records(
        dg.RunsFilter(job_name=SESSION_JOB, tags={"dagster/partition": day.isoformat()})
    )
    return [r.dagster_run for r in records]


def all_runs() -> list[dg.DagsterRun]:
    return [r.dagster_run for r in dg.DagsterInstance.get().get_run_records()]


def published_tree_problems(output_dir: Path) -> list[str]:
    """Everything under ``output_dir`` that breaks the storage contract, as sentences.

    - no ``.tmp-`` file anywhere (a partial write);
    - every session directory with files belongs to a manifest, and holds exactly the files
      it lists (with their ``.sha256`` sidecars);
    - every manifest's files match their checksums (``verify_session``);
    - a quarantine directory only for a published session.
    """
    output_dir = Path(output_dir)
    problems = [f"partial file {p}" for p in find_tmp_leftovers(output_dir)]
    if not output_dir.exists():
        return problems
    manifests = {}
    for path in sorted((output_dir / MANIFESTS_DIR).glob("*.json")):
        day = parse_session_dirname(path.stem)
        if day is None:
            problems.append(f"unexpected file {path}")
            continue
        manifests[day] = load_manifest(output_dir, day)
        report = verify_session(output_dir, day)
        if not report.ok:
            problems.append(f"{day} does not verify: {report.to_dict()['problems']}")
    for top in sorted(output_dir.iterdir()):
        if top.name in (MANIFESTS_DIR, LOCKS_DIR):
            continue
        for session_dir in sorted(top.iterdir()):
            day = parse_session_dirname(session_dir.name)
            manifest = manifests.get(day)
            if manifest is None:
                # An empty directory a failed publish made is not data; a file is.
                files = sorted(p.name for p in session_dir.rglob("*") if p.is_file())
                if files:
                    problems.append(f"{session_dir} holds {files} but no manifest lists them")
                continue
            if top.name == QUARANTINE_DIR:
                continue
            listed = {
                Path(f.path).name
                for f in manifest.files
                if Path(f.path).parent.parent == Path(top.name)
            }
            listed |= {name + CHECKSUM_SUFFIX for name in listed}
            present = {p.name for p in session_dir.iterdir()}
            if present != listed:
                problems.append(
                    f"{session_dir} holds {sorted(present)}, its manifest lists {sorted(listed)}"
                )
    return problems


# Longest wait for a run to reach the point it is to be killed at.
WAIT_S = 90


def _progress(progress_dir: Path, pid: int) -> dict | None:
    """The newest progress snapshot written by process ``pid`` (None before the first one)."""
    newest = None
    for path in progress_dir.glob("*.json"):
        try:
            snap = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if snap.get("pid") != pid:
            continue  # a run killed earlier, or an in-process re-run
        if newest is None or snap.get("updated_at", 0) > newest.get("updated_at", 0):
            newest = snap
    return newest


def _manifest_stamp(output_dir: Path, day: dt.date) -> tuple[int, int] | None:
    try:
        st = OutputLayout.of(output_dir).manifest_path(day).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _reached(point: str, snap: dict | None, fetch_after: int, manifest_changed: bool) -> bool:
    if point == "manifest":
        return manifest_changed
    if snap is None:
        return False
    if point == "fetch":
        # Answers are counted in the file every 0.5 s: a run already past the fetch is killed
        # at once rather than missed.
        return (snap["stage"] == "fetch" and snap["done"] >= fetch_after) or snap["stage"] in (
            "fetched",
            "validate",
        )
    return snap["stage"] == point


def kill_at(process, point: str, rng: random.Random, home: Path, day: dt.date) -> str:
    """Wait for ``point`` in ``process``'s run, then SIGKILL it; return where the run was."""
    progress_dir, output_dir = home / "progress", home / "data"
    before = _manifest_stamp(output_dir, day)
    fetch_after = rng.randint(0, 4)  # a tiny session is 6 data requests
    extra_delay = rng.uniform(0.0, 0.15 if point == "fetch" else 0.03)
    deadline = time.monotonic() + WAIT_S
    snap = None
    while time.monotonic() < deadline and process.poll() is None:
        snap = _progress(progress_dir, process.pid)
        if _reached(point, snap, fetch_after, _manifest_stamp(output_dir, day) != before):
            break
        time.sleep(0.002)
    else:
        hung = process.poll() is None
        if hung:
            os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=30)
        what = f"hung for {WAIT_S} s" if hung else f"ended (rc {process.returncode})"
        raise AssertionError(f"the run {what} before reaching {point}: {err[-3000:]}")
    time.sleep(0 if point == "manifest" else extra_delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    snap = _progress(progress_dir, process.pid)
    committed = _manifest_stamp(output_dir, day) != before
    return f"{snap['stage'] if snap else 'starting'}{' +manifest' if committed else ''}"
