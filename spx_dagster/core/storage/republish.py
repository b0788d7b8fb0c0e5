"""Committing a session that may already be published: its history carries over, and a revisit
never leaves it worse than before.

Every publish carries the previous manifest's ``first_published_at`` (its ``created_at`` when it
predates the field) and ``revisits``, so a forced re-run keeps the session's revisit schedule.
A revisit (``core.revisits``) compares what it fetched with the publish it would replace: with
more holes, or as many holes and fewer rows, the previous publish stays (its manifest is
rewritten with the revisit recorded, the new pending files are dropped); otherwise the new one
is committed like any publish. Either way the revisit is recorded, so it is never run twice.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from spx_dagster.core.revisits import KEPT_NEW, KEPT_PREVIOUS, Revisit, RevisitRun, session_holes
from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from spx_dagster.core.storage.manifest import (
    Manifest,
    ManifestError,
    load_manifest,
    write_manifest,
)
from spx_dagster.core.storage.manifest_index import refresh_index_after_commit
from spx_dagster.core.storage.publish import CommitResult, commit_manifest
from spx_dagster.core.storage.rollforward import discard_pending


def _previous(output_dir: Path, session: dt.date) -> Manifest | None:
    try:
        return load_manifest(output_dir, session)
    except ManifestError:
        return None  # a corrupt session has no history worth keeping, nor a publish to keep


def worse_than(new: Manifest, previous: Manifest) -> bool:
    """Whether ``new`` holds less than ``previous``: more holes, or as many and fewer rows."""
    before, after = session_holes(previous.quality), session_holes(new.quality)
    return after > before or (after == before and new.rows < previous.rows)


def commit_republish(
    output_dir: Path,
    manifest: Manifest,
    *,
    revisit: RevisitRun | None = None,
    now: dt.datetime | None = None,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> tuple[Manifest, CommitResult]:
    """Commit ``manifest`` (or keep the previous publish for a revisit that found less).

    Call where ``commit_manifest`` would be called: inside the session lock, after the pending
    files are written. Returns the manifest that is now the session's truth and the commit.
    """
    previous = _previous(output_dir, manifest.session)
    if previous is not None:
        manifest.first_published_at = previous.first_published_at or previous.created_at
        manifest.revisits = [dict(r) for r in previous.revisits]
    if manifest.first_published_at is None:
        manifest.first_published_at = manifest.created_at
    if revisit is None or previous is None:
        return manifest, _commit(output_dir, manifest, file_mode, dir_mode)
    keep = worse_than(manifest, previous)
    record = Revisit(
        at=(now or dt.datetime.now(tz=dt.UTC)).replace(microsecond=0).isoformat(),
        after_days=revisit.after_days,
        run_id=revisit.run_id,
        holes_before=session_holes(previous.quality),
        holes_after=session_holes(manifest.quality),
        kept=KEPT_PREVIOUS if keep else KEPT_NEW,
    ).to_dict()
    if not keep:
        manifest.revisits.append(record)
        return manifest, _commit(output_dir, manifest, file_mode, dir_mode)
    previous.first_published_at = manifest.first_published_at
    previous.revisits.append(record)
    path = write_manifest(output_dir, previous, file_mode=file_mode, dir_mode=dir_mode)
    refresh_index_after_commit(output_dir, file_mode=file_mode, dir_mode=dir_mode)
    discard_pending(output_dir, manifest.session)
    return previous, CommitResult(path, [], [])


def _commit(output_dir: Path, manifest: Manifest, file_mode: int, dir_mode: int) -> CommitResult:
    return commit_manifest(output_dir, manifest, file_mode=file_mode, dir_mode=dir_mode)
