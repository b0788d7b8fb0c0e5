"""Where every file of a session lives: the temp stages and the published output.

Temp (``storage.temp_dir``), per session, resumable::

    <temp_dir>/staging/date=YYYY-MM-DD/<dataset>/<ROOT>_<YYYY-MM-DD|ALL>.parquet   (+ .json stats)
    <temp_dir>/validated/date=YYYY-MM-DD/<dataset>/<ROOT>_<YYYY-MM-DD|ALL>.parquet

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
import re
from dataclasses import dataclass
from pathlib import Path

from spx_dagster.core.storage.location import local_path

STAGING_DIR = "staging"
VALIDATED_DIR = "validated"
MANIFESTS_DIR = "_manifests"
QUARANTINE_DIR = "_quarantine"
LOCKS_DIR = "_locks"
# Every temporary file starts with this prefix, so leftovers of a crash are easy to find.
TMP_PREFIX = ".tmp-"
PARQUET_SUFFIX = ".parquet"
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
        return self.stem + PARQUET_SUFFIX

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
        stem = filename.removesuffix(PARQUET_SUFFIX).removesuffix(STATS_SUFFIX)
        match = _PART_RE.match(stem)
        if not match:
            raise ValueError(
                f"{filename!r} is not a part file name; expected <ROOT>_<YYYY-MM-DD|ALL>.parquet, "
                f"e.g. SPXW_2024-03-15.parquet"
            )
        exp = match.group("exp")
        return cls(
            root=match.group("root"),
            expiration=None if exp == ALL_EXPIRATIONS else dt.date.fromisoformat(exp),
            suffix=match.group("suffix") or "",
        )


# ---------------------------------------------------------------------------------------------
# Temp stages
# ---------------------------------------------------------------------------------------------
def staging_dir(temp_dir: Path, session: dt.date) -> Path:
    """``<temp_dir>/staging/date=D``: where the client stages a session's responses."""
    return local_path(temp_dir) / STAGING_DIR / session_dirname(session)


def validated_dir(temp_dir: Path, session: dt.date) -> Path:
    """``<temp_dir>/validated/date=D``: the valid rows of each staged response."""
    return local_path(temp_dir) / VALIDATED_DIR / session_dirname(session)


def staged_file(temp_dir: Path, session: dt.date, dataset: str, part: PartKey) -> Path:
    return staging_dir(temp_dir, session) / dataset / part.filename


def staged_stats_file(temp_dir: Path, session: dt.date, dataset: str, part: PartKey) -> Path:
    """The JSON sidecar of fetch figures beside a staged response."""
    return staging_dir(temp_dir, session) / dataset / (part.stem + STATS_SUFFIX)


def validated_file(temp_dir: Path, session: dt.date, dataset: str, part: PartKey) -> Path:
    return validated_dir(temp_dir, session) / dataset / part.filename


def validated_quarantine_file(temp_dir: Path, session: dt.date, dataset: str) -> Path:
    """Where validation collects a dataset's refused rows; publishing commits them with the rest."""
    return validated_dir(temp_dir, session) / QUARANTINE_DIR / f"{dataset}{PARQUET_SUFFIX}"


def _parts_in(directory: Path) -> list[PartKey]:
    if not directory.is_dir():
        return []
    parts = []
    for entry in directory.iterdir():
        name = entry.name
        if name.startswith(TMP_PREFIX) or not name.endswith(PARQUET_SUFFIX):
            continue
        try:
            parts.append(PartKey.parse(name))
        except ValueError:
            continue  # not ours; verify and cleanup do not touch the temp stages' strays
    return sorted(parts, key=lambda p: p.sort_key)


def staged_parts(temp_dir: Path, session: dt.date, dataset: str) -> list[PartKey]:
    """The staged responses of a dataset, in published order (root, then expiration)."""
    return _parts_in(staging_dir(temp_dir, session) / dataset)


def validated_parts(temp_dir: Path, session: dt.date, dataset: str) -> list[PartKey]:
    """The validated parts of a dataset, in published order (root, then expiration)."""
    return _parts_in(validated_dir(temp_dir, session) / dataset)


def session_temp_dirs(temp_dir: Path, session: dt.date) -> list[Path]:
    """Every temp directory a session uses (staging and validated)."""
    return [staging_dir(temp_dir, session), validated_dir(temp_dir, session)]


# ---------------------------------------------------------------------------------------------
# Published output
# ---------------------------------------------------------------------------------------------
def dataset_session_dir(output_dir: Path, dataset: str, session: dt.date) -> Path:
    """``<output_dir>/<dataset>/date=D``: the published files of one dataset and session."""
    return local_path(output_dir) / dataset / session_dirname(session)


def published_file(output_dir: Path, dataset: str, session: dt.date) -> Path:
    """``<output_dir>/<dataset>/date=D/<dataset>.parquet``: the one published file of a dataset."""
    return dataset_session_dir(output_dir, dataset, session) / f"{dataset}{PARQUET_SUFFIX}"


def pending_dir(output_dir: Path, session: dt.date) -> Path:
    """``<output_dir>/_pending/date=D``: the files of a publish not yet renamed into place."""
    return local_path(output_dir) / PENDING_DIR / session_dirname(session)


def pending_path(output_dir: Path, session: dt.date, final: Path) -> Path:
    """Where the new version of the published ``final`` waits for its commit: the same path
    relative to the output directory, under the session's pending directory."""
    return pending_dir(output_dir, session) / relative_to_output(output_dir, final)


def final_path(output_dir: Path, session: dt.date, pending: Path) -> Path:
    """The published path a pending file replaces (the inverse of ``pending_path``)."""
    return local_path(output_dir) / Path(pending).relative_to(pending_dir(output_dir, session))


def checksum_path(path: Path) -> Path:
    """The ``sha256sum``-format sidecar of a file: ``<file>.sha256``."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def manifests_dir(output_dir: Path) -> Path:
    return local_path(output_dir) / MANIFESTS_DIR


def manifest_path(output_dir: Path, session: dt.date) -> Path:
    """``<output_dir>/_manifests/date=D.json``: the commit point of a session."""
    return manifests_dir(output_dir) / f"{session_dirname(session)}.json"


def quarantine_dir(output_dir: Path, session: dt.date) -> Path:
    return local_path(output_dir) / QUARANTINE_DIR / session_dirname(session)


def quarantine_file(output_dir: Path, session: dt.date, dataset: str) -> Path:
    """``<output_dir>/_quarantine/date=D/<dataset>.parquet``: rejected rows with their reason."""
    return quarantine_dir(output_dir, session) / f"{dataset}{PARQUET_SUFFIX}"


def lock_file(output_dir: Path, session: dt.date) -> Path:
    return local_path(output_dir) / LOCKS_DIR / f"{session_dirname(session)}.lock"


def dataset_names_on_disk(output_dir: Path) -> list[str]:
    """Dataset directories under ``output_dir`` (anything not starting with ``_`` or ``.``)."""
    root = local_path(output_dir)
    if not root.is_dir():
        return []
    return sorted(
        e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith(("_", "."))
    )


def session_data_dirs(output_dir: Path, session: dt.date) -> list[Path]:
    """Every existing ``<output_dir>/<dataset>/date=D`` directory, listed or not."""
    dirs = (
        dataset_session_dir(output_dir, name, session) for name in dataset_names_on_disk(output_dir)
    )
    return [d for d in dirs if d.is_dir()]


def relative_to_output(output_dir: Path, path: Path) -> str:
    """A path as the manifest records it: relative to ``output_dir``, with ``/`` separators."""
    return Path(path).relative_to(local_path(output_dir)).as_posix()
