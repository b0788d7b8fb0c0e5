"""What is committed: the files of each dataset that a readable manifest lists, per session.

The one place every reader (the catalog, ``spx_dagster.read``, ``spx-data sql`` and ``chain``)
learns which parquet files to read. A session is committed when its manifest
``_manifests/date=D.json`` can be read; its files are exactly the ones that manifest lists. Files
on disk that no manifest lists (a publish in flight, a crashed one, leftovers) are never named
here, whatever their names. Plain Python: no Dagster, no DuckDB.

Reading is cheap: one directory listing (``manifest_sessions``), then one manifest per session in
the range. ``manifests_stamp`` identifies the state of the manifests directory so a long-lived
reader can tell, with one listing, whether it must read them again.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from spx_dagster.core.storage import (
    Manifest,
    ManifestError,
    manifest_sessions,
    read_manifest,
)
from spx_dagster.core.storage.layout import OutputLayout


@dataclass(frozen=True)
class CommittedFile:
    """One committed data file: its session, dataset and where it is."""

    session: dt.date
    dataset: str
    path: Path  # absolute
    relative: str  # as the manifest lists it (relative to output_dir)
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Committed:
    """The committed sessions of an output directory as read at one moment.

    ``unreadable`` maps a session whose manifest exists but cannot be read (or lists a path
    outside the output directory) to the reason: it is not committed, and readers skip it.
    """

    output_dir: Path
    manifests: dict[dt.date, Manifest] = field(default_factory=dict)
    manifest_paths: dict[dt.date, Path] = field(default_factory=dict)
    unreadable: dict[dt.date, str] = field(default_factory=dict)

    @property
    def sessions(self) -> list[dt.date]:
        """Committed sessions, oldest first (``no_data`` ones included: they list no files)."""
        return list(self.manifests)

    def files(
        self, dataset: str, *, start: dt.date | None = None, end: dt.date | None = None
    ) -> list[CommittedFile]:
        """The committed files of ``dataset`` in [start, end], by session then as listed."""
        found = []
        for session, manifest in self.manifests.items():
            if (start and session < start) or (end and session > end):
                continue
            entry = manifest.datasets.get(dataset)
            for f in entry.files if entry else ():
                found.append(
                    CommittedFile(
                        session=session,
                        dataset=dataset,
                        path=self.output_dir / f.path,
                        relative=f.path,
                        rows=f.rows,
                        bytes=f.bytes,
                        sha256=f.sha256,
                    )
                )
        return found


def _escapes(relative: str) -> bool:
    """A listed path that is absolute or climbs out of the output directory."""
    path = PurePosixPath(relative)
    return path.is_absolute() or ".." in path.parts or not path.parts


def read_committed(
    output_dir: Path, *, start: dt.date | None = None, end: dt.date | None = None
) -> Committed:
    """The committed sessions of ``output_dir`` in [start, end] (every one when not given).

    A manifest removed between the listing and its read (a session unpublished meanwhile) is
    simply not committed; one that cannot be read is reported in ``unreadable``.
    """
    layout = OutputLayout.of(output_dir)
    root = layout.root
    manifests: dict[dt.date, Manifest] = {}
    paths: dict[dt.date, Path] = {}
    unreadable: dict[dt.date, str] = {}
    for session in manifest_sessions(root):
        if (start and session < start) or (end and session > end):
            continue
        path = layout.manifest_path(session)
        try:
            manifest = read_manifest(path)
        except FileNotFoundError:
            continue
        except ManifestError as error:
            unreadable[session] = str(error)
            continue
        outside = [f.path for f in manifest.files if _escapes(f.path)]
        if outside:
            unreadable[session] = (
                f"manifest {path} lists {outside[0]!r}, which is not a path inside {root}; "
                f"re-publish the session with `spx-data process {session} --force`"
            )
            continue
        manifests[session] = manifest
        paths[session] = path
    return Committed(root, manifests, paths, unreadable)


def committed_files(
    output_dir: Path, dataset: str, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[CommittedFile]:
    """The committed files of one dataset over [start, end]: what a reader may read."""
    return read_committed(output_dir, start=start, end=end).files(dataset)


def manifests_stamp(output_dir: Path) -> tuple[tuple[str, int, int, int], ...]:
    """An identity of the manifests directory's state (names, inodes, mtimes, sizes).

    A commit renames a new manifest into place (a new inode) and an unpublish removes one, so
    two equal stamps mean the committed sessions did not change in between.
    """
    directory = OutputLayout.of(output_dir).manifests_dir()
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                found.append((entry.name, stat.st_ino, stat.st_mtime_ns, stat.st_size))
    except FileNotFoundError:
        return ()
    return tuple(sorted(found))
