"""Committing a session: pending files, then the manifest, then the renames into place.

The order is what makes a crash harmless and a reader safe: (1) every new file (data, sidecar,
quarantine) is complete and fsynced under ``_pending/date=D/``, where the documented globs do not
look; (2) the new manifest is renamed over the old one (the commit); (3) each pending file is
renamed over the published file of the same name (``rollforward.py``), and files the manifest no
longer lists go. A crash before (2) leaves the old session, published and intact (the next
publish or ``verify`` drops the pending files); after (2), the next publish or ``verify`` finishes
(3). A reader never sees a file no committed manifest lists, nor two versions of one dataset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, fsync_dir
from spx_dagster.core.storage.cleanup import remove_unlisted
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.core.storage.manifest import STATUS_NO_DATA, Manifest, write_manifest
from spx_dagster.core.storage.manifest_index import refresh_index_after_commit
from spx_dagster.core.storage.rollforward import discard_pending, roll_forward


class PublishError(RuntimeError):
    """A manifest that would not describe what is on disk; nothing was committed."""


@dataclass(frozen=True)
class CommitResult:
    manifest_path: Path
    removed: list[Path]
    placed: list[Path]


def _listed_sizes(manifest: Manifest) -> dict[str, int | None]:
    sizes: dict[str, int | None] = {f.path: f.bytes for f in manifest.files}
    for entry in manifest.datasets.values():
        if entry.quarantine_path:
            sizes[entry.quarantine_path] = entry.quarantine_bytes
    return sizes


def _check_listed_files(output_dir: Path, manifest: Manifest) -> None:
    """Every listed file is waiting under ``_pending/`` (or already in place) with its size."""
    layout = OutputLayout.of(output_dir)
    problems = []
    for relative, expected in _listed_sizes(manifest).items():
        final = layout.root / relative
        candidates = (layout.pending_path(manifest.session, final), final)
        size = next((p.stat().st_size for p in candidates if p.exists()), None)
        if size is None:
            problems.append(f"{relative} does not exist")
        elif expected is not None and size != expected:
            problems.append(f"{relative} has {size} bytes, the manifest says {expected}")
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
    """Commit ``manifest`` as the session's truth, move its files into place, drop the rest.

    Call inside ``session_lock`` after ``publish_dataset`` (and the quarantine staging) for every
    dataset. For a session on which every request answered "no data", pass a manifest with
    ``status="no_data"`` and no files.
    """
    _check_listed_files(output_dir, manifest)
    path = write_manifest(output_dir, manifest, file_mode=file_mode, dir_mode=dir_mode)
    refresh_index_after_commit(output_dir, file_mode=file_mode, dir_mode=dir_mode)
    placed = roll_forward(output_dir, manifest.session, manifest, check_content=False)
    removed = remove_unlisted(output_dir, manifest.session, manifest)
    return CommitResult(path, removed, placed)


def unpublish_session(output_dir: Path, session: dt.date) -> list[Path]:
    """Remove a session: its files first (readers stop seeing its rows), then the manifest.

    Caller holds the session lock. Returns what was removed.
    """
    discard_pending(output_dir, session)
    removed = remove_unlisted(output_dir, session, None)
    path = OutputLayout.of(output_dir).manifest_path(session)
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)
        removed.append(path)
        refresh_index_after_commit(
            output_dir, file_mode=DEFAULT_FILE_MODE, dir_mode=DEFAULT_DIR_MODE
        )
    return removed
