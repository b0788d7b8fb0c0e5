"""Re-checking published sessions against their manifests, reporting every mismatch.

Errors make a session corrupt (missing or unreadable manifest, missing file, size, row count or
checksum mismatch, missing or wrong sidecar); warnings do not (orphan files the manifest does not
list and ``.tmp-`` leftovers of a crash: the published session is intact, cleanup removes them).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pyarrow.parquet as pq

from spx_dagster.core.storage.atomic import read_checksum_sidecar, sha256_file
from spx_dagster.core.storage.cleanup import session_tmp_leftovers, unlisted_files
from spx_dagster.core.storage.layout import (
    dataset_names_on_disk,
    manifest_path,
    parse_session_dirname,
)
from spx_dagster.core.storage.location import local_path
from spx_dagster.core.storage.manifest import (
    Manifest,
    ManifestError,
    manifest_sessions,
    read_manifest,
)


class ProblemKind(StrEnum):
    MISSING_MANIFEST = "missing_manifest"
    UNREADABLE_MANIFEST = "unreadable_manifest"
    MISSING_FILE = "missing_file"
    SIZE_MISMATCH = "size_mismatch"
    ROWS_MISMATCH = "rows_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    MISSING_SIDECAR = "missing_sidecar"
    SIDECAR_MISMATCH = "sidecar_mismatch"
    ORPHAN_FILE = "orphan_file"
    TMP_LEFTOVER = "tmp_leftover"


WARNINGS = frozenset({ProblemKind.ORPHAN_FILE, ProblemKind.TMP_LEFTOVER})


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    path: str  # relative to the output directory
    message: str

    @property
    def is_error(self) -> bool:
        return self.kind not in WARNINGS

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "path": self.path,
            "message": self.message,
            "severity": "error" if self.is_error else "warning",
        }


@dataclass
class VerifyReport:
    """The outcome of verifying one session.

    ``status`` is ``complete`` / ``no_data`` (the manifest's, when no error was found),
    ``corrupt`` (an error) or ``missing`` (no manifest).
    """

    session: dt.date
    status: str
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0
    manifest: Manifest | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def ok(self) -> bool:
        """The session is published and intact (warnings allowed)."""
        return self.manifest is not None and not self.errors

    def to_dict(self) -> dict:
        return {
            "session": self.session.isoformat(),
            "status": self.status,
            "ok": self.ok,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "seconds": round(self.seconds, 3),
            "problems": [p.to_dict() for p in self.problems],
        }


def _rel(output_dir: Path, path: Path) -> str:
    try:
        return path.relative_to(output_dir).as_posix()
    except ValueError:
        return str(path)


def verify_session(output_dir: Path, session: dt.date, *, checksums: bool = True) -> VerifyReport:
    """Check one session's manifest against the disk; every mismatch is reported.

    With ``checksums=False`` only sizes, row counts and sidecars are checked (fast); otherwise
    every listed file is re-hashed in 1 MiB chunks.
    """
    output_dir = local_path(output_dir)
    started = time.monotonic()
    report = VerifyReport(session=session, status="missing")
    path = manifest_path(output_dir, session)
    manifest: Manifest | None = None
    try:
        manifest = read_manifest(path)
    except FileNotFoundError:
        report.problems.append(
            Problem(
                ProblemKind.MISSING_MANIFEST,
                _rel(output_dir, path),
                f"session {session} has no manifest: it is not published "
                f"(process it with `spx-data process {session}`)",
            )
        )
    except ManifestError as exc:
        report.problems.append(
            Problem(ProblemKind.UNREADABLE_MANIFEST, _rel(output_dir, path), str(exc))
        )
        report.status = "corrupt"
    if manifest is not None:
        report.manifest = manifest
        for entry in manifest.files:
            report.problems.extend(_check_file(output_dir, entry, checksums, report))
    if manifest is not None or report.status != "corrupt":
        # Without a readable manifest nothing is "listed": every data file is an orphan.
        for orphan in unlisted_files(output_dir, session, manifest):
            report.problems.append(
                Problem(
                    ProblemKind.ORPHAN_FILE,
                    _rel(output_dir, orphan),
                    "not listed in the manifest (left by an interrupted publish); "
                    f"`spx-data verify` cleanup or the next publish of {session} removes it",
                )
            )
    for leftover in session_tmp_leftovers(output_dir, session):
        report.problems.append(
            Problem(
                ProblemKind.TMP_LEFTOVER,
                _rel(output_dir, leftover),
                "temporary file of an interrupted write; removed by cleanup or the next publish",
            )
        )
    if manifest is not None:
        report.status = "corrupt" if report.errors else manifest.status
    report.seconds = time.monotonic() - started
    return report


def _check_file(output_dir: Path, entry, checksums: bool, report: VerifyReport) -> list[Problem]:
    path = output_dir / entry.path
    problems: list[Problem] = []
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [
            Problem(
                ProblemKind.MISSING_FILE,
                entry.path,
                f"listed in the manifest ({entry.bytes} bytes) but missing on disk; "
                "re-publish the session with --force",
            )
        ]
    report.files_checked += 1
    if size != entry.bytes:
        problems.append(
            Problem(
                ProblemKind.SIZE_MISMATCH,
                entry.path,
                f"{size} bytes on disk, the manifest says {entry.bytes}",
            )
        )
    else:
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as exc:  # any parse failure of the footer means the file is damaged
            rows = None
            if not checksums:
                problems.append(
                    Problem(
                        ProblemKind.CHECKSUM_MISMATCH,
                        entry.path,
                        f"parquet footer unreadable ({exc})",
                    )
                )
        if rows is not None and rows != entry.rows:
            problems.append(
                Problem(
                    ProblemKind.ROWS_MISMATCH,
                    entry.path,
                    f"{rows} rows in the file, the manifest says {entry.rows}",
                )
            )
    if checksums:
        actual = sha256_file(path)
        report.bytes_checked += size
        if actual != entry.sha256:
            problems.append(
                Problem(
                    ProblemKind.CHECKSUM_MISMATCH,
                    entry.path,
                    f"sha256 {actual} differs from the manifest's {entry.sha256}: the file is "
                    "corrupt; re-publish the session with --force",
                )
            )
    sidecar = read_checksum_sidecar(path)
    if sidecar is None:
        problems.append(
            Problem(
                ProblemKind.MISSING_SIDECAR,
                entry.path + ".sha256",
                "checksum sidecar missing or malformed",
            )
        )
    elif sidecar != (entry.sha256, path.name):
        problems.append(
            Problem(
                ProblemKind.SIDECAR_MISMATCH,
                entry.path + ".sha256",
                f"sidecar says {sidecar[0]}  {sidecar[1]}, manifest {entry.sha256}  {path.name}",
            )
        )
    return problems


def sessions_on_disk(output_dir: Path) -> list[dt.date]:
    """Sessions with a manifest or with any dataset directory (published or orphaned)."""
    output_dir = local_path(output_dir)
    days = set(manifest_sessions(output_dir))
    for name in dataset_names_on_disk(output_dir):
        for entry in (output_dir / name).iterdir():
            day = parse_session_dirname(entry.name)
            if day is not None and entry.is_dir():
                days.add(day)
    return sorted(days)


def verify_all(
    output_dir: Path,
    sessions: Iterable[dt.date] | None = None,
    *,
    checksums: bool = True,
) -> Iterator[VerifyReport]:
    """Verify ``sessions`` (default: every session with a manifest or data on disk), in order.

    A generator, so a caller can show progress; each report lists every problem of its session.
    """
    days = sorted(set(sessions)) if sessions is not None else sessions_on_disk(output_dir)
    for day in days:
        yield verify_session(output_dir, day, checksums=checksums)
