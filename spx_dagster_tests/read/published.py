"""Published sessions for the readers' tests: the real pipeline's history, and copies of it.

``history`` (from ``cli/reading_history.py``) runs three complete sessions, one the vendor had no
data for and one that failed through the session job against the simulator, once per test
session, and is shared read-only. A test that changes files works on ``copy_history``: the same
published files and manifests, copied to its own directory.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from spx_dagster.core.storage import load_manifest
from spx_dagster_tests.cli.reading_history import COMPLETE, NO_DATA, History

COMMITTED = [*COMPLETE, NO_DATA]
UNLISTED_DAY = dt.date(2024, 11, 11)  # a session with data files and no manifest


def copy_history(history: History, where: Path) -> Path:
    """A copy of the published output directory (data, manifests, quarantine) at ``where``."""
    target = where / "data"
    shutil.copytree(history.output_dir, target, ignore=shutil.ignore_patterns("_locks"))
    return target


def manifest_rows(output_dir: Path, dataset: str) -> dict:
    """Rows per session of ``dataset`` as the manifests list them."""
    rows = {}
    for day in COMMITTED:
        manifest = load_manifest(output_dir, day)
        entry = manifest.datasets.get(dataset) if manifest else None
        if entry and entry.rows:
            rows[day] = entry.rows
    return rows


def plant_unlisted_files(output_dir: Path) -> None:
    """What a crash or a publish in flight leaves: data files no manifest lists.

    A whole session directory without a manifest (killed before its first commit), and a
    second file beside a listed one (a re-publish killed before its commit).
    """
    listed = output_dir / load_manifest(output_dir, COMPLETE[0]).datasets["greeks"].files[0].path
    orphan_dir = output_dir / "greeks" / f"date={UNLISTED_DAY}"
    orphan_dir.mkdir(parents=True)
    shutil.copy(listed, orphan_dir / listed.name)
    shutil.copy(listed, listed.with_name("greeks-0123456789abcdef.parquet"))
