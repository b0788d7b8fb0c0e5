"""Committing a session: manifest last, then the files it no longer lists go.

The order is what makes a crash harmless: (1) every new data file is complete, fsynced and
renamed under a content-derived name that no current file has; (2) the new manifest is renamed
over the old one (the commit); (3) only then are files the new manifest does not list deleted.
A crash before (2) leaves the old session plus orphans; after (2), the new session plus orphans.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, fsync_dir
from spx_dagster.core.storage.cleanup import remove_unlisted
from spx_dagster.core.storage.layout import manifest_path
from spx_dagster.core.storage.location import local_path
from spx_dagster.core.storage.manifest import STATUS_NO_DATA, Manifest, write_manifest


class PublishError(RuntimeError):
    """A manifest that would not describe what is on disk; nothing was committed."""


@dataclass(frozen=True)
class CommitResult:
    manifest_path: Path
    removed: list[Path]


def _check_listed_files(output_dir: Path, manifest: Manifest) -> None:
    problems = []
    for entry in manifest.files:
        path = local_path(output_dir) / entry.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{entry.path} does not exist")
            continue
        if size != entry.bytes:
            problems.append(f"{entry.path} has {size} bytes, the manifest says {entry.bytes}")
    if manifest.status == STATUS_NO_DATA and manifest.files:
        problems.append(f"a no_data session lists {len(manifest.files)} files; it must list none")
    if problems:
        raise PublishError(
            f"the manifest of {manifest.session} does not match the files on disk, so it was not "
            f"committed (the published session is unchanged): {'; '.join(problems)}. "
            "Re-run the session's publish step."
        )


def commit_manifest(
    output_dir: Path,
    manifest: Manifest,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> CommitResult:
    """Commit ``manifest`` as the session's truth, then delete files it does not list.

    Call inside ``session_lock`` after ``publish_dataset`` for every dataset. For a session on
    which every request answered "no data", pass a manifest with ``status="no_data"`` and no files.
    """
    _check_listed_files(output_dir, manifest)
    path = write_manifest(output_dir, manifest, file_mode=file_mode, dir_mode=dir_mode)
    removed = remove_unlisted(output_dir, manifest.session, manifest)
    return CommitResult(path, removed)


def unpublish_session(output_dir: Path, session: dt.date) -> list[Path]:
    """Remove a session: manifest first (it stops being published), then its files.

    Caller holds the session lock. Returns what was removed.
    """
    path = manifest_path(output_dir, session)
    removed = []
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)
        removed.append(path)
    return removed + remove_unlisted(output_dir, session, None)
