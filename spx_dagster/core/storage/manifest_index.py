"""The summary index of the manifests: ``_manifests/.index``, one small file read instead of
thousands of manifests, so ``gaps``, ``list``, ``status`` and the gap sensor stay fast at full
history.

The index maps each manifest's file name to its stamp (inode, mtime_ns, size) and its
``ManifestSummary``. It is a cache, never the truth: every reader lists ``_manifests/`` and
trusts an entry only when the file's stamp still matches; a manifest the index does not know (or
knows with another stamp: a re-publish renames a new inode into place, an older spx-data or a
hand edit rewrites it) is read again, and an entry whose file is gone is dropped. So a missing,
corrupt, foreign-version or stale index costs a re-read of what changed, never a wrong answer,
and a crash between a manifest's commit and the index update leaves a state the next read
repairs (and rewrites, when it may write there).

Writers (``refresh_index``, called by the commit points of ``publish.py`` and ``republish.py``
after the manifest is renamed into place, still inside the session lock) serialise on
``_locks/manifest-index.lock``: publishes of different sessions hold different session locks.
The file is written with ``atomic_write_bytes`` (temp file, fsync, rename, fsync of the
directory). Its name starts with a dot and has no ``.json`` suffix, so it is neither a manifest
to any reader nor matched by a ``_manifests/*.json`` glob.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spx_dagster.core.storage.atomic import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    atomic_write_bytes,
    ensure_dir,
)
from spx_dagster.core.storage.layout import (
    TMP_PREFIX,
    OutputLayout,
    parse_session_dirname,
)

INDEX_NAME = ".index"
INDEX_LOCK_NAME = "manifest-index.lock"
INDEX_VERSION = 1

Stamp = tuple[int, int, int]  # (st_ino, st_mtime_ns, st_size)


def index_path(output_dir: Path) -> Path:
    """``<output_dir>/_manifests/.index``."""
    return OutputLayout.of(output_dir).manifests_dir() / INDEX_NAME


def _summary_type() -> type:
    from spx_dagster.core.storage.manifest import ManifestSummary

    return ManifestSummary


def _fields_signature() -> list[str]:
    # A summary gaining a field (a newer spx-data) makes older indexes foreign: rebuilt, not
    # read with the field missing.
    return [f.name for f in dataclasses.fields(_summary_type())]


def _encode(summary: Any) -> dict[str, Any]:
    data = dataclasses.asdict(summary)
    data["session"] = summary.session.isoformat()
    return data


def _decode(data: dict[str, Any]) -> Any:
    data = dict(data)
    data["session"] = dt.date.fromisoformat(data["session"])
    data["file_sizes"] = tuple((str(p), int(n)) for p, n in data.get("file_sizes", ()))
    if data.get("cpu_window") is not None:
        data["cpu_window"] = tuple(data["cpu_window"])
    data["revisits"] = tuple(int(d) for d in data.get("revisits", ()))
    return _summary_type()(**data)


@dataclasses.dataclass
class IndexEntry:
    stamp: Stamp
    summary: Any  # ManifestSummary


# Long-lived readers (the gap sensor, a --watch) parse the index again only when it changed.
_loaded: dict[str, tuple[Stamp, dict[str, IndexEntry]]] = {}
_loaded_lock = threading.Lock()


def load_index(output_dir: Path) -> dict[str, IndexEntry]:
    """The entries of the index file; empty when it is missing, unreadable or of another
    version (the caller then reads the manifests: the index is only a cache)."""
    path = index_path(output_dir)
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            with _loaded_lock:
                cached = _loaded.get(str(path))
            if cached is not None and cached[0] == stamp:
                return dict(cached[1])
            data = json.loads(handle.read())
        if data.get("index_version") != INDEX_VERSION or data.get("fields") != _fields_signature():
            return {}
        entries = {
            name: IndexEntry(tuple(entry["stamp"]), _decode(entry["summary"]))  # type: ignore[arg-type]
            for name, entry in data["entries"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    with _loaded_lock:
        _loaded[str(path)] = (stamp, entries)
    return dict(entries)


def manifest_stamps(output_dir: Path) -> dict[str, tuple[dt.date, Stamp]]:
    """Every manifest file of ``_manifests/`` with its session and stamp (one listing)."""
    return _list_manifests(output_dir)[0]


def _list_manifests(output_dir: Path) -> tuple[dict[str, tuple[dt.date, Stamp]], bool]:
    """``manifest_stamps`` and whether a temp file of an index write is there, from one
    listing of ``_manifests/``."""
    directory = OutputLayout.of(output_dir).manifests_dir()
    found: dict[str, tuple[dt.date, Stamp]] = {}
    index_temps = False
    temp_prefix = f"{TMP_PREFIX}{INDEX_NAME}-"
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(temp_prefix):
                    index_temps = True
                if not name.endswith(".json") or name.startswith("."):
                    continue
                day = parse_session_dirname(name.removesuffix(".json"))
                if day is None:
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue  # replaced or removed while listing
                found[name] = (day, (stat.st_ino, stat.st_mtime_ns, stat.st_size))
    except (FileNotFoundError, NotADirectoryError):
        return {}, False
    return found, index_temps


def current_entries(
    output_dir: Path,
    index: dict[str, IndexEntry],
    stamps: dict[str, tuple[dt.date, Stamp]] | None = None,
) -> tuple[dict[str, IndexEntry], bool]:
    """The entries the manifests on disk have now (``stamps``, else listed here), reusing
    ``index`` where a stamp matches; and whether they differ from ``index`` (then it is stale
    and worth rewriting)."""
    from spx_dagster.core.storage.manifest import ManifestError, ManifestSummary, read_manifest

    directory = OutputLayout.of(output_dir).manifests_dir()
    fresh: dict[str, IndexEntry] = {}
    changed = False
    for name, (day, stamp) in (manifest_stamps(output_dir) if stamps is None else stamps).items():
        known = index.get(name)
        if known is not None and known.stamp == stamp:
            fresh[name] = known
            continue
        try:
            summary = ManifestSummary.of(read_manifest(directory / name))
        except FileNotFoundError:
            continue
        except ManifestError as exc:
            summary = ManifestSummary.unreadable(day, str(exc))
        fresh[name] = IndexEntry(stamp, summary)
        changed = True
    return fresh, changed or len(fresh) != len(index)


def write_index(
    output_dir: Path, entries: dict[str, IndexEntry], *, file_mode: int = DEFAULT_FILE_MODE
) -> Path:
    """Write the index atomically (temp file, fsync, rename, directory fsync)."""
    document = {
        "index_version": INDEX_VERSION,
        "fields": _fields_signature(),
        "entries": {
            name: {"stamp": list(entry.stamp), "summary": _encode(entry.summary)}
            for name, entry in sorted(entries.items())
        },
    }
    path = index_path(output_dir)
    atomic_write_bytes(path, json.dumps(document, separators=(",", ":")).encode(), mode=file_mode)
    return path


@contextlib.contextmanager
def _index_lock(
    output_dir: Path, *, blocking: bool, file_mode: int, dir_mode: int
) -> Iterator[bool]:
    """Hold the index's exclusive lock; yields False (not held) when ``blocking`` is False and
    another process holds it."""
    directory = ensure_dir(OutputLayout.of(output_dir).locks_dir(), mode=dir_mode)
    fd = os.open(directory / INDEX_LOCK_NAME, os.O_RDWR | os.O_CREAT, file_mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def refresh_index(
    output_dir: Path,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> dict[str, IndexEntry]:
    """Bring the index in step with ``_manifests/`` (reading only what changed) and return its
    entries. Called after every commit and removal of a manifest."""
    with _index_lock(output_dir, blocking=True, file_mode=file_mode, dir_mode=dir_mode):
        _drop_killed_writes(output_dir)
        entries, changed = current_entries(output_dir, load_index(output_dir))
        if changed or not index_path(output_dir).exists():
            write_index(output_dir, entries, file_mode=file_mode)
    return entries


def _killed_writes(output_dir: Path) -> list[Path]:
    """Temp files of index writes: a writer's work in progress, or what a killed one left."""
    return sorted(OutputLayout.of(output_dir).manifests_dir().glob(f"{TMP_PREFIX}{INDEX_NAME}-*"))


def _drop_killed_writes(output_dir: Path) -> list[Path]:
    """Delete the temp files of index writes whose process was killed (call under the index's
    lock: no writer is mid-write then); return them."""
    dropped = []
    for path in _killed_writes(output_dir):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            dropped.append(path)
    return dropped


def drop_killed_index_writes(output_dir: Path) -> list[Path]:
    """Delete what index writes killed mid-write left (``_manifests/.tmp-.index-*``), unless a
    writer holds the index's lock now (then they may be its work in progress); return them.

    A commit of any session does this too; ``verify`` calls it so a store checked after a crash
    is left clean even when no session is published again. Without write access it does nothing.
    """
    if not _killed_writes(output_dir):
        return []
    with (
        contextlib.suppress(OSError),
        _index_lock(
            output_dir, blocking=False, file_mode=DEFAULT_FILE_MODE, dir_mode=DEFAULT_DIR_MODE
        ) as held,
    ):
        if held:
            return _drop_killed_writes(output_dir)
    return []


def refresh_index_after_commit(output_dir: Path, *, file_mode: int, dir_mode: int) -> None:
    """``refresh_index`` for a commit point: the manifest is committed already, so an index that
    cannot be written (no space, no permission) must not fail the publish; the next reader
    finds the stale entry by its stamp and repairs it."""
    with contextlib.suppress(OSError):
        refresh_index(output_dir, file_mode=file_mode, dir_mode=dir_mode)


def indexed_summaries(output_dir: Path) -> dict[str, IndexEntry]:
    """The entries of every manifest, from the index where it is current; a stale or missing
    index is rebuilt when this process may write there and no writer holds the lock."""
    index = load_index(output_dir)
    stamps, index_temps = _list_manifests(output_dir)
    entries, changed = current_entries(output_dir, index, stamps)
    if changed or (entries and not index) or index_temps:
        # A reader may have no write access (a researcher's read-only mount): then it answers
        # from what it read and leaves the repair to the next publish.
        with (
            contextlib.suppress(OSError),
            _index_lock(
                output_dir, blocking=False, file_mode=DEFAULT_FILE_MODE, dir_mode=DEFAULT_DIR_MODE
            ) as held,
        ):
            if held:  # re-listed under the lock: never write back what a commit replaced
                _drop_killed_writes(output_dir)
                entries, _ = current_entries(output_dir, entries)
                write_index(output_dir, entries)
    return entries
