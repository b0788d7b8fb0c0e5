"""Making a committed publish visible: pending files are renamed over the published ones.

A publish writes every new file under ``<output_dir>/_pending/date=D/`` (the same relative path it
will have), commits the manifest that lists them, and only then renames each one into place. A
rename replaces a published file in one step, so a reader sees the old file or the new one of a
dataset, never both and never neither. When a crash lands between the commit and the last rename,
the pending directory still holds the rest: ``recover_session`` finishes the job (roll forward)
for files the committed manifest lists with that content, and drops the others (a publish that
never committed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
from pathlib import Path

from spx_dagster.core.storage.atomic import (
    ensure_dir,
    fsync_dir,
    read_checksum_sidecar,
    sha256_file,
)
from spx_dagster.core.storage.layout import (
    CHECKSUM_SUFFIX,
    PARQUET_SUFFIX,
    TMP_PREFIX,
    OutputLayout,
)
from spx_dagster.core.storage.manifest import Manifest, ManifestError, load_manifest


def committed_contents(manifest: Manifest) -> dict[str, str | None]:
    """Every file the manifest commits (data and quarantine), relative path → sha256.

    A quarantine file recorded by an older spx-data has no checksum (None).
    """
    listed: dict[str, str | None] = {f.path: f.sha256 for f in manifest.files}
    for entry in manifest.datasets.values():
        if entry.quarantine_path:
            listed[entry.quarantine_path] = entry.quarantine_sha256
    return listed


def pending_files(output_dir: Path, session: dt.date) -> list[Path]:
    """The files waiting under the session's pending directory (temp files of a write excluded)."""
    root = OutputLayout.of(output_dir).pending_dir(session)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(TMP_PREFIX))


def _is_committed_version(pending: Path, relative: str, listed: dict[str, str | None]) -> bool:
    """Whether ``pending`` holds what the manifest lists at ``relative`` (its sidecar: what the
    manifest lists for its data file)."""
    if relative.endswith(CHECKSUM_SUFFIX):
        expected = listed.get(relative.removesuffix(CHECKSUM_SUFFIX))
        sidecar = read_checksum_sidecar(
            pending.with_name(pending.name.removesuffix(CHECKSUM_SUFFIX))
        )
        return expected is not None and sidecar is not None and sidecar[0] == expected
    if relative not in listed:
        return False
    expected = listed[relative]
    if expected is None:
        return True
    sidecar = read_checksum_sidecar(pending)
    actual = sidecar[0] if sidecar is not None else sha256_file(pending)
    return actual == expected


def _remove_other_parquet(
    directory: Path, keep: Path, listed: dict[str, str | None], output_dir: Path
) -> None:
    """Files of an older layout in a dataset directory (content-named, ``<dataset>-<hash>.parquet``)
    go before the new file arrives: a reader then misses the dataset for an instant rather than
    seeing two versions of it together."""
    if not directory.is_dir():
        return
    layout = OutputLayout.of(output_dir)
    for other in directory.iterdir():
        name = other.name
        if other == keep or name.startswith(TMP_PREFIX):
            continue
        if name.endswith(PARQUET_SUFFIX) and layout.relative_to_output(other) not in listed:
            other.unlink(missing_ok=True)
            Path(str(other) + CHECKSUM_SUFFIX).unlink(missing_ok=True)


def roll_forward(
    output_dir: Path, session: dt.date, manifest: Manifest, *, check_content: bool = True
) -> list[Path]:
    """Rename the pending files ``manifest`` commits over the published ones; drop the rest.

    Caller holds the session lock. ``check_content=False`` is for the publisher itself, which
    knows it just wrote what it committed. Each data file moves before its sidecar. Returns the
    published paths that were replaced.
    """
    layout = OutputLayout.of(output_dir)
    output_dir = layout.root
    files = pending_files(output_dir, session)
    listed = committed_contents(manifest)
    moves: list[tuple[Path, Path]] = []
    for pending in files:
        final = layout.final_path(session, pending)
        relative = layout.relative_to_output(final)
        wanted = relative in listed or relative.removesuffix(CHECKSUM_SUFFIX) in listed
        if wanted and (not check_content or _is_committed_version(pending, relative, listed)):
            moves.append((pending, final))
    # Data files first, each sidecar after the file it describes.
    moves.sort(key=lambda move: (move[1].name.endswith(CHECKSUM_SUFFIX), str(move[1])))
    placed = []
    for pending, final in moves:
        # A published directory gets the mode its pending twin was created with (storage.file_mode).
        directory = ensure_dir(final.parent, mode=stat.S_IMODE(pending.parent.stat().st_mode))
        if not final.name.endswith(CHECKSUM_SUFFIX):
            _remove_other_parquet(directory, final, listed, output_dir)
        os.replace(pending, final)
        placed.append(final)
    for directory in {final.parent for _, final in moves}:
        fsync_dir(directory)
    discard_pending(output_dir, session)
    return placed


def discard_pending(output_dir: Path, session: dt.date) -> bool:
    """Remove the session's pending directory (what is left of a publish); True if it existed."""
    root = OutputLayout.of(output_dir).pending_dir(session)
    if not root.exists():
        return False
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        fsync_dir(root.parent)
    return True


def recover_session(output_dir: Path, session: dt.date) -> list[Path]:
    """Finish or drop what an interrupted publish left under ``_pending/``; return what moved.

    Caller holds the session lock. Files the committed manifest lists with that content are
    rolled forward; everything else there belongs to a publish that never committed and goes.
    An unreadable manifest leaves the pending files alone (there is no telling what they are).
    """
    if not OutputLayout.of(output_dir).pending_dir(session).exists():
        return []
    try:
        manifest = load_manifest(output_dir, session)
    except ManifestError:
        return []
    if manifest is None:
        discard_pending(output_dir, session)
        return []
    return roll_forward(output_dir, session, manifest, check_content=True)
