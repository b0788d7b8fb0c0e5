"""Where every file of a session lives: the temp stages and the published output.

``StorageLayout`` (``OutputLayout`` + ``TempLayout``) is the one place that turns
``storage.output_dir`` and ``storage.temp_dir`` into paths: each is resolved once
(``location.local_path``: ``~``, ``file://`` URIs; object stores are refused there) and every
publish, verify, cleanup and read asks it for a path. Another store (README, "Scaling out")
lands here and in ``atomic.py``, the one atomic-write helper (temp name, fsync, rename,
directory fsync).

Temp (``storage.temp_dir``), per session, resumable::

    <temp_dir>/staging/date=YYYY-MM-DD/<dataset>/<ROOT>_<YYYY-MM-DD|ALL>.arrow     (+ .json stats)
    <temp_dir>/validated/date=YYYY-MM-DD/<dataset>/<ROOT>_<YYYY-MM-DD|ALL>.arrow

    (parts are LZ4 Arrow IPC files, ``stage_tables.py``; the malformed lines of an answer,
    ``_malformed/`` beside it, and the quarantine are parquet)

    <temp_dir>/validated/date=YYYY-MM-DD/_quarantine/<dataset>.parquet           (refused rows)

Published (``storage.output_dir``), the contract of DESIGN.md::

    <output_dir>/<dataset>/date=YYYY-MM-DD/<dataset>.parquet          (+ .sha256 sidecar)
    <output_dir>/_manifests/date=YYYY-MM-DD.json
    <output_dir>/_quarantine/date=YYYY-MM-DD/<dataset>.parquet
    <output_dir>/_pending/date=YYYY-MM-DD/<the same relative paths>   (only while publishing)
    <output_dir>/_locks/date=YYYY-MM-DD.lock

Each published file has one fixed name per dataset and session, so a re-publish replaces it by
one ``rename``: a reader globbing ``<dataset>/*/*.parquet`` sees the old file or the new one,
never both and never neither. New files are written under ``_pending/`` (invisible to that glob)
and renamed into place only after the manifest that lists them is committed (``publish.py``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spx_dagster.core.storage.location import local_path

STAGING_DIR = "staging"
VALIDATED_DIR = "validated"
MANIFESTS_DIR = "_manifests"
QUARANTINE_DIR = "_quarantine"
LOCKS_DIR = "_locks"
# Every temporary file starts with this prefix, so leftovers of a crash are easy to find.
TMP_PREFIX = ".tmp-"
PARQUET_SUFFIX = ".parquet"
# A staged or validated part (an Arrow IPC file: ``core.storage.stage_tables``).
ARROW_SUFFIX = ".arrow"
STATS_SUFFIX = ".json"
CHECKSUM_SUFFIX = ".sha256"
# The part name of a response that covers every expiration (the request's ``expiration=*``).
ALL_EXPIRATIONS = "ALL"
PENDING_DIR = "_pending"

_SESSION_DIR_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_PART_RE = re.compile(
    r"^(?P<root>[A-Z0-9]+)_(?P<exp>\d{4}-\d{2}-\d{2}|ALL)(?:_(?P<suffix>[^.]+))?$"
)


def session_dirname(session: dt.date) -> str:
    """The hive partition directory name of a session: ``date=YYYY-MM-DD``."""
    return f"date={session.isoformat()}"


def parse_session_dirname(name: str) -> dt.date | None:
    """The session of a ``date=YYYY-MM-DD`` name (a directory or a file stem), or None."""
    match = _SESSION_DIR_RE.match(name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


@dataclass(frozen=True)
class PartKey:
    """One staged response of a dataset: a root and an expiration (None: every expiration).

    ``suffix`` tells apart several responses for the same root and expiration (a request the
    terminal found too large and that was split, e.g. by right); contracts never span suffixes.
    """

    root: str
    expiration: dt.date | None
    suffix: str = ""

    @property
    def stem(self) -> str:
        exp = self.expiration.isoformat() if self.expiration else ALL_EXPIRATIONS
        return f"{self.root}_{exp}" + (f"_{self.suffix}" if self.suffix else "")

    @property
    def filename(self) -> str:
        """The file name of the part in either temp stage (Arrow IPC)."""
        return self.stem + ARROW_SUFFIX

    @property
    def sort_key(self) -> tuple[str, int, dt.date, str]:
        """Root, then whole-chain parts, then expirations in order: the published sort order."""
        return (
            self.root,
            0 if self.expiration is None else 1,
            self.expiration or dt.date.min,
            self.suffix,
        )

    @classmethod
    def parse(cls, filename: str) -> PartKey:
        """Parse ``SPXW_2024-03-15.parquet`` (or its stem); ValueError names a bad name."""
        stem = (
            filename.removesuffix(PARQUET_SUFFIX)
            .removesuffix(ARROW_SUFFIX)
            .removesuffix(STATS_SUFFIX)
        )
        match = _PART_RE.match(stem)
        if not match:
            raise ValueError(
                f"{filename!r} is not a part file name; expected <ROOT>_<YYYY-MM-DD|ALL>.arrow, "
                f"e.g. SPXW_2024-03-15.arrow"
            )
        exp = match.group("exp")
        return cls(
            root=match.group("root"),
            expiration=None if exp == ALL_EXPIRATIONS else dt.date.fromisoformat(exp),
            suffix=match.group("suffix") or "",
        )


def _parts_in(directory: Path) -> list[PartKey]:
    if not directory.is_dir():
        return []
    parts = []
    for entry in directory.iterdir():
        name = entry.name
        if name.startswith(TMP_PREFIX) or not name.endswith(ARROW_SUFFIX):
            continue
        try:
            parts.append(PartKey.parse(name))
        except ValueError:
            continue  # not ours; verify and cleanup do not touch the temp stages' strays
    return sorted(parts, key=lambda p: p.sort_key)


def checksum_path(path: Path) -> Path:
    """The ``sha256sum``-format sidecar of a file: ``<file>.sha256``."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


# ---------------------------------------------------------------------------------------------
# Temp stages
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TempLayout:
    """Every path of the temp stages under ``storage.temp_dir`` (``root``, resolved once)."""

    root: Path

    @classmethod
    def of(cls, temp_dir: str | os.PathLike[str] | TempLayout) -> TempLayout:
        """The layout of ``temp_dir`` (a path or ``file://`` URI, ``local_path``), or itself."""
        return temp_dir if isinstance(temp_dir, TempLayout) else cls(local_path(temp_dir))

    def staging_dir(self, session: dt.date) -> Path:
        """``<temp_dir>/staging/date=D``: where the client stages a session's responses."""
        return self.root / STAGING_DIR / session_dirname(session)

    def validated_dir(self, session: dt.date) -> Path:
        """``<temp_dir>/validated/date=D``: the valid rows of each staged response."""
        return self.root / VALIDATED_DIR / session_dirname(session)

    def staged_file(self, session: dt.date, dataset: str, part: PartKey) -> Path:
        return self.staging_dir(session) / dataset / part.filename

    def staged_stats_file(self, session: dt.date, dataset: str, part: PartKey) -> Path:
        """The JSON sidecar of fetch figures beside a staged response."""
        return self.staging_dir(session) / dataset / (part.stem + STATS_SUFFIX)

    def validated_file(self, session: dt.date, dataset: str, part: PartKey) -> Path:
        return self.validated_dir(session) / dataset / part.filename

    def validated_quarantine_file(self, session: dt.date, dataset: str) -> Path:
        """Where validation collects a dataset's refused rows; publishing commits them with
        the rest."""
        return self.validated_dir(session) / QUARANTINE_DIR / f"{dataset}{PARQUET_SUFFIX}"

    def staged_parts(self, session: dt.date, dataset: str) -> list[PartKey]:
        """The staged responses of a dataset, in published order (root, then expiration)."""
        return _parts_in(self.staging_dir(session) / dataset)

    def validated_parts(self, session: dt.date, dataset: str) -> list[PartKey]:
        """The validated parts of a dataset, in published order (root, then expiration)."""
        return _parts_in(self.validated_dir(session) / dataset)

    def session_temp_dirs(self, session: dt.date) -> list[Path]:
        """Every temp directory a session uses (staging and validated)."""
        return [self.staging_dir(session), self.validated_dir(session)]


# ---------------------------------------------------------------------------------------------
# Published output
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputLayout:
    """Every published path under ``storage.output_dir`` (``root``, resolved once): the one
    place that turns the output directory into paths, where another store would land."""

    root: Path

    @classmethod
    def of(cls, output_dir: str | os.PathLike[str] | OutputLayout) -> OutputLayout:
        """The layout of ``output_dir`` (a path or ``file://`` URI, ``local_path``), or itself."""
        return output_dir if isinstance(output_dir, OutputLayout) else cls(local_path(output_dir))

    def dataset_session_dir(self, dataset: str, session: dt.date) -> Path:
        """``<output_dir>/<dataset>/date=D``: the published files of one dataset and session."""
        return self.root / dataset / session_dirname(session)

    def published_file(self, dataset: str, session: dt.date) -> Path:
        """``<output_dir>/<dataset>/date=D/<dataset>.parquet``: the one published file of a
        dataset."""
        return self.dataset_session_dir(dataset, session) / f"{dataset}{PARQUET_SUFFIX}"

    def pending_dir(self, session: dt.date) -> Path:
        """``<output_dir>/_pending/date=D``: the files of a publish not yet renamed into place."""
        return self.root / PENDING_DIR / session_dirname(session)

    def pending_path(self, session: dt.date, final: Path) -> Path:
        """Where the new version of the published ``final`` waits for its commit: the same path
        relative to the output directory, under the session's pending directory."""
        return self.pending_dir(session) / self.relative_to_output(final)

    def final_path(self, session: dt.date, pending: Path) -> Path:
        """The published path a pending file replaces (the inverse of ``pending_path``)."""
        return self.root / Path(pending).relative_to(self.pending_dir(session))

    def manifests_dir(self) -> Path:
        return self.root / MANIFESTS_DIR

    def manifest_path(self, session: dt.date) -> Path:
        """``<output_dir>/_manifests/date=D.json``: the commit point of a session."""
        return self.manifests_dir() / f"{session_dirname(session)}.json"

    def quarantine_dir(self, session: dt.date) -> Path:
        return self.root / QUARANTINE_DIR / session_dirname(session)

    def quarantine_file(self, session: dt.date, dataset: str) -> Path:
        """``<output_dir>/_quarantine/date=D/<dataset>.parquet``: rejected rows with their
        reason."""
        return self.quarantine_dir(session) / f"{dataset}{PARQUET_SUFFIX}"

    def locks_dir(self) -> Path:
        return self.root / LOCKS_DIR

    def lock_file(self, session: dt.date) -> Path:
        return self.locks_dir() / f"{session_dirname(session)}.lock"

    def dataset_names_on_disk(self) -> list[str]:
        """Dataset directories under the output directory (anything not starting with ``_``
        or ``.``)."""
        if not self.root.is_dir():
            return []
        return sorted(
            e.name for e in self.root.iterdir() if e.is_dir() and not e.name.startswith(("_", "."))
        )

    def session_data_dirs(self, session: dt.date) -> list[Path]:
        """Every existing ``<output_dir>/<dataset>/date=D`` directory, listed or not."""
        dirs = (self.dataset_session_dir(name, session) for name in self.dataset_names_on_disk())
        return [d for d in dirs if d.is_dir()]

    def relative_to_output(self, path: Path) -> str:
        """A path as the manifest records it: relative to the output directory, with ``/``
        separators."""
        return Path(path).relative_to(self.root).as_posix()


@dataclass(frozen=True)
class StorageLayout:
    """The resolved storage of a pipeline: its published output and its temp stages."""

    output: OutputLayout
    temp: TempLayout

    @classmethod
    def resolve(
        cls, output_dir: str | os.PathLike[str], temp_dir: str | os.PathLike[str]
    ) -> StorageLayout:
        return cls(OutputLayout.of(output_dir), TempLayout.of(temp_dir))

    @classmethod
    def from_settings(cls, storage: Any) -> StorageLayout:
        """From the ``storage`` section of the settings (``output_dir``, ``temp_dir``)."""
        return cls.resolve(storage.output_dir, storage.temp_dir)
