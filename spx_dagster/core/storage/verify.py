"""Re-checking published sessions against their manifests, reporting every mismatch.

Errors make a session corrupt (missing or unreadable manifest, missing file, size, row count or
checksum mismatch, missing or wrong sidecar, a quarantine file that differs from the manifest, and
orphans: files no manifest lists, which a reader globbing the dataset would see). Warnings do not
(``.tmp-`` leftovers of a crash, invisible to readers, and an interrupted publish that verify
finished). Each session is checked under its lock held shared, so a re-publish running meanwhile
waits and never shows as a false problem.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pyarrow.parquet as pq

from spx_dagster.core.storage.atomic import read_checksum_sidecar, sha256_file
from spx_dagster.core.storage.cleanup import session_tmp_leftovers, unlisted_files
from spx_dagster.core.storage.layout import PENDING_DIR, OutputLayout, parse_session_dirname
from spx_dagster.core.storage.locks import (
    DEFAULT_LOCK_TIMEOUT_S,
    SessionLocked,
    session_lock,
    session_read_lock,
)
from spx_dagster.core.storage.manifest import (
    Manifest,
    ManifestError,
    manifest_sessions,
    read_manifest,
)
from spx_dagster.core.storage.manifest_index import drop_killed_index_writes
from spx_dagster.core.storage.rollforward import recover_session


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
    MISSING_QUARANTINE = "missing_quarantine"
    QUARANTINE_MISMATCH = "quarantine_mismatch"
    INTERRUPTED_PUBLISH = "interrupted_publish"
    LOCKED = "locked"


WARNINGS = frozenset(
    {ProblemKind.TMP_LEFTOVER, ProblemKind.INTERRUPTED_PUBLISH, ProblemKind.LOCKED}
)
# Times verify finishes an interrupted publish it finds before it checks what is there anyway.
FINISH_ATTEMPTS = 3
# What removes the files no manifest lists, named wherever they are reported.
REMOVE_ORPHANS_COMMAND = "spx-data verify {session} --remove-orphans"


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


def verify_session(
    output_dir: Path,
    session: dt.date,
    *,
    checksums: bool = True,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> VerifyReport:
    """Check one session's manifest against the disk; every mismatch is reported.

    With ``checksums=False`` only sizes, row counts and sidecars are checked (fast); otherwise
    every listed file is re-hashed in 1 MiB chunks. A publish of the session waits while this
    runs (the lock is held shared); one interrupted after its commit is finished first.
    """
    layout = OutputLayout.of(output_dir)
    output_dir = layout.root
    started = time.monotonic()
    finished: list[Problem] = []
    report = None
    try:
        # A publisher killed while this waited for the lock may leave its commit half applied:
        # that is seen under the lock, finished under the exclusive lock, and checked again.
        for _ in range(FINISH_ATTEMPTS):
            with session_read_lock(output_dir, session, timeout_s=lock_timeout_s):
                if not layout.pending_dir(session).exists():
                    report = _verify_unlocked(output_dir, session, checksums)
                    break
            finished += _finish_interrupted_publish(output_dir, session, lock_timeout_s)
            if any(p.is_error for p in finished):
                break  # it could not be finished (no write access): check what is there
        if report is None:
            with session_read_lock(output_dir, session, timeout_s=lock_timeout_s):
                report = _verify_unlocked(output_dir, session, checksums)
    except SessionLocked as locked:
        report = VerifyReport(session=session, status="locked")
        report.problems.append(
            Problem(ProblemKind.LOCKED, _rel(output_dir, locked.path), str(locked))
        )
    report.problems[:0] = finished
    report.seconds = time.monotonic() - started
    return report


def _finish_interrupted_publish(
    output_dir: Path, session: dt.date, lock_timeout_s: float
) -> list[Problem]:
    """Roll forward (or drop) what a killed publish left under ``_pending/``, as a warning."""
    pending = OutputLayout.of(output_dir).pending_dir(session)
    if not pending.exists():
        return []
    try:
        with session_lock(output_dir, session, timeout_s=lock_timeout_s):
            if not pending.exists():
                return []  # the publisher that held the lock finished it
            placed = recover_session(output_dir, session)
    except SessionLocked:
        return []  # a publisher is at work; the shared lock below waits for it
    except OSError as error:
        return [
            Problem(
                ProblemKind.CHECKSUM_MISMATCH,
                _rel(output_dir, pending),
                f"an interrupted publish left files in {pending} that could not be finished "
                f"({error}); run `spx-data verify {session}` with write access to the output "
                "directory, or re-publish the session with --force",
            )
        ]
    return [
        Problem(
            ProblemKind.INTERRUPTED_PUBLISH,
            _rel(output_dir, pending),
            f"a publish of {session} was interrupted after its commit; its last "
            f"{len(placed)} file(s) were moved into place now"
            if placed
            else f"a publish of {session} was interrupted before its commit; its files were "
            "dropped (the published session is unchanged)",
        )
    ]


def _verify_unlocked(output_dir: Path, session: dt.date, checksums: bool) -> VerifyReport:
    report = VerifyReport(session=session, status="missing")
    path = OutputLayout.of(output_dir).manifest_path(session)
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
        for name, dataset in manifest.datasets.items():
            report.problems.extend(_check_quarantine(output_dir, name, dataset, checksums))
    if manifest is not None or report.status != "corrupt":
        # Without a readable manifest nothing is "listed": every data file is an orphan.
        for orphan in unlisted_files(output_dir, session, manifest):
            report.problems.append(
                Problem(
                    ProblemKind.ORPHAN_FILE,
                    _rel(output_dir, orphan),
                    "no manifest lists this file, yet a reader globbing the dataset sees its "
                    f"rows; `{REMOVE_ORPHANS_COMMAND.format(session=session)}` or the next "
                    f"`spx-data process {session}` removes it",
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
    return report


def _check_quarantine(output_dir: Path, name: str, entry, checksums: bool) -> list[Problem]:
    """The quarantine file the manifest lists for a dataset: present, its size and checksum."""
    if not entry.quarantine_path:
        return []
    path = output_dir / entry.quarantine_path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [
            Problem(
                ProblemKind.MISSING_QUARANTINE,
                entry.quarantine_path,
                f"the manifest lists {entry.quarantined_rows} quarantined {name} rows in this "
                "file, but it is missing; re-publish the session with --force",
            )
        ]
    if entry.quarantine_bytes is not None and size != entry.quarantine_bytes:
        return [
            Problem(
                ProblemKind.QUARANTINE_MISMATCH,
                entry.quarantine_path,
                f"{size} bytes on disk, the manifest says {entry.quarantine_bytes}",
            )
        ]
    if checksums and entry.quarantine_sha256 is not None:
        actual = _sha256_or_none(path)
        if actual != entry.quarantine_sha256:
            return [
                Problem(
                    ProblemKind.QUARANTINE_MISMATCH,
                    entry.quarantine_path,
                    f"sha256 {actual or '(file vanished)'} differs from the manifest's "
                    f"{entry.quarantine_sha256}; re-publish the session with --force",
                )
            ]
    return []


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


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
        actual = _sha256_or_none(path)
        report.bytes_checked += size
        if actual is None:
            problems.append(
                Problem(ProblemKind.MISSING_FILE, entry.path, "removed while it was checked")
            )
        elif actual != entry.sha256:
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
    """Sessions with a manifest, any dataset directory (published or orphaned) or files of an
    interrupted publish."""
    layout = OutputLayout.of(output_dir)
    output_dir = layout.root
    days = set(manifest_sessions(output_dir))
    pending_root = output_dir / PENDING_DIR
    if pending_root.is_dir():
        days |= {d for d in map(parse_session_dirname, os.listdir(pending_root)) if d is not None}
    for name in layout.dataset_names_on_disk():
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
    It also drops what a killed write of the manifests' summary index left (a cache's temp
    file, no session's data, which no session's own check would find).
    """
    drop_killed_index_writes(output_dir)
    days = sorted(set(sessions)) if sessions is not None else sessions_on_disk(output_dir)
    for day in days:
        yield verify_session(output_dir, day, checksums=checksums)
