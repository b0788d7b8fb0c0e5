"""Removing what a session no longer needs: temp stages, ``.tmp-`` leftovers, orphan files.

``session_temp_stages`` lists what the temp stages of unpublished sessions hold (a run that
failed, crashed or was interrupted leaves them for the next run to resume from), so that a
refusal for disk space can name them and the command that frees them.

An orphan is a file in a session's dataset or quarantine directory that its manifest does not
list (left by an older spx-data, copied there by hand, or a session whose manifest was deleted):
a reader globbing ``<dataset>/*/*.parquet`` would see its rows, so ``verify`` reports it as an
error and the next publish of the session, or ``verify --remove-orphans``, deletes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spx_dagster.core.storage.atomic import fsync_dir
from spx_dagster.core.storage.layout import (
    CHECKSUM_SUFFIX,
    STAGING_DIR,
    TMP_PREFIX,
    VALIDATED_DIR,
    OutputLayout,
    TempLayout,
    parse_session_dirname,
    session_dirname,
)
from spx_dagster.core.storage.locks import DEFAULT_LOCK_TIMEOUT_S, session_lock
from spx_dagster.core.storage.manifest import Manifest, load_manifest
from spx_dagster.core.storage.rollforward import recover_session


def remove_session_temp(temp_dir: Path, session: dt.date) -> list[Path]:
    """Delete a session's staging and validated directories; return those that existed."""
    removed = []
    for directory in TempLayout.of(temp_dir).session_temp_dirs(session):
        if directory.exists():
            shutil.rmtree(directory)
            removed.append(directory)
    return removed


@dataclass(frozen=True)
class TempStage:
    """The temp stages one session holds on disk (its staging and validated directories)."""

    session: dt.date
    paths: tuple[Path, ...]
    bytes: int


def _tree_bytes(directory: Path) -> int:
    total = 0
    for base, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_size
    return total


def session_temp_stages(temp_dir: Path) -> list[TempStage]:
    """Every session with temp stages under ``temp_dir``, oldest session first, with sizes."""
    temp_dir = TempLayout.of(temp_dir).root
    found: dict[dt.date, list[Path]] = {}
    for stage in (STAGING_DIR, VALIDATED_DIR):
        parent = temp_dir / stage
        if not parent.is_dir():
            continue
        for child in sorted(parent.iterdir()):
            session = parse_session_dirname(child.name)
            if session is not None and child.is_dir():
                found.setdefault(session, []).append(child)
    return [
        TempStage(session, tuple(paths), sum(_tree_bytes(p) for p in paths))
        for session, paths in sorted(found.items())
    ]


def remove_command(stages: Iterable[TempStage]) -> str:
    """The shell command that deletes ``stages`` (paths quoted)."""
    paths = [str(p) for stage in stages for p in stage.paths]
    return "rm -rf -- " + " ".join(shlex.quote(p) for p in paths)


def find_tmp_leftovers(root: Path) -> list[Path]:
    """Every ``.tmp-*`` file below ``root`` (a crash's leftovers, or a write in progress)."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob(f"{TMP_PREFIX}*") if p.is_file())


def remove_tmp_leftovers(root: Path, *, older_than_s: float | None = None) -> list[Path]:
    """Delete ``.tmp-*`` files below ``root`` (only those older than ``older_than_s`` if given).

    Pass ``older_than_s`` when a writer might be running; without it, call under the lock of the
    session the files belong to.
    """
    removed = []
    now = time.time()
    for path in find_tmp_leftovers(root):
        try:
            if older_than_s is not None and now - path.stat().st_mtime < older_than_s:
                continue
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def session_tmp_leftovers(output_dir: Path, session: dt.date) -> list[Path]:
    """``.tmp-`` files of one session: in its dataset dirs, its quarantine and its manifest."""
    layout = OutputLayout.of(output_dir)
    found = [p for d in layout.session_data_dirs(session) for p in find_tmp_leftovers(d)]
    found += find_tmp_leftovers(layout.quarantine_dir(session))
    manifests = layout.manifests_dir()
    if manifests.is_dir():
        found += sorted(manifests.glob(f"{TMP_PREFIX}{session_dirname(session)}.json*"))
    return found


def unlisted_files(output_dir: Path, session: dt.date, manifest: Manifest | None) -> list[Path]:
    """Files in the session's dataset and quarantine directories that ``manifest`` does not list.

    A listed file's ``.sha256`` sidecar counts as listed; ``.tmp-`` files are left to
    ``session_tmp_leftovers``. Without a manifest every file is unlisted.
    """
    layout = OutputLayout.of(output_dir)
    output_dir = layout.root
    listed: set[Path] = set()
    if manifest is not None:
        for entry in manifest.files:
            path = output_dir / entry.path
            listed.add(path)
            listed.add(path.with_name(path.name + CHECKSUM_SUFFIX))
        for entry in manifest.datasets.values():
            if entry.quarantine_path:
                listed.add(output_dir / entry.quarantine_path)
    out = []
    quarantine = layout.quarantine_dir(session)
    directories = layout.session_data_dirs(session)
    if quarantine.is_dir():
        directories.append(quarantine)
    for directory in directories:
        for path in sorted(directory.iterdir()):
            if path.name.startswith(TMP_PREFIX) or path in listed:
                continue
            out.append(path)
    return out


def remove_unlisted(output_dir: Path, session: dt.date, manifest: Manifest | None) -> list[Path]:
    """Delete the session's orphans and ``.tmp-`` leftovers. Caller holds the session lock."""
    layout = OutputLayout.of(output_dir)
    doomed = unlisted_files(output_dir, session, manifest) + session_tmp_leftovers(
        output_dir, session
    )
    removed = []
    for path in doomed:
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
    for directory in {p.parent for p in removed}:
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(directory)
    for directory in [
        *layout.session_data_dirs(session),
        layout.quarantine_dir(session),
    ]:
        with contextlib.suppress(OSError):  # not empty (it holds listed files), or gone
            directory.rmdir()
    return removed


def cleanup_orphans(
    output_dir: Path, session: dt.date, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> list[Path]:
    """Take the session lock, finish an interrupted publish, delete files its manifest does not
    list; return them."""
    with session_lock(output_dir, session, timeout_s=lock_timeout_s):
        recover_session(output_dir, session)
        return remove_unlisted(output_dir, session, load_manifest(output_dir, session))
