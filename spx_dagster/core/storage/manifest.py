"""The session manifest: what a published session contains, and the commit point of a publish.

A session is complete only when ``_manifests/date=D.json`` exists and every file it lists matches
its checksum. The JSON is versioned (``manifest_version``); readers reject a newer version with
advice instead of guessing; fields added since version 1 are optional (an older spx-data
ignores them, a newer one reads their absence as the old meaning), so the version stays 1.
``published_sessions`` reads thousands of manifests quickly from their summary index
(``manifest_index``), trusting an entry only while its file's stamp matches.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from spx_dagster.core.cpu_clock import window_of_manifest_extra
from spx_dagster.core.datasets import SCHEMA_VERSION
from spx_dagster.core.revisits import revisit_days, session_holes
from spx_dagster.core.storage.atomic import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    atomic_write_bytes,
    ensure_dir,
)
from spx_dagster.core.storage.layout import OutputLayout, parse_session_dirname

MANIFEST_VERSION = 1
STATUS_COMPLETE = "complete"
STATUS_NO_DATA = "no_data"  # every request answered "no data" (472): an answer, not a failure
STATUSES = (STATUS_COMPLETE, STATUS_NO_DATA)
SOURCE_KINDS = ("simulator", "terminal")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file, the problem and the fix."""


@dataclass
class FileEntry:
    """One published file; ``path`` is relative to the output directory."""

    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class DatasetEntry:
    """One dataset of a session: its published files and the rows refused into quarantine.

    ``quarantined_rows`` counts rows that failed a check and lines the client could not parse;
    ``quarantine_path`` (relative to the output directory) is their file, None when there are none,
    committed with the session like its data files: ``quarantine_bytes`` and ``quarantine_sha256``
    (None in manifests written before quarantine joined the commit) let ``verify`` check it.
    ``dropped_outside_plan`` counts rows of expirations the plan does not hold (a wildcard
    ``expiration=*`` answer reaches past ``processing.max_dte``), dropped before validation.
    """

    files: list[FileEntry] = field(default_factory=list)
    rows: int = 0
    quarantined_rows: int = 0
    quarantine_path: str | None = None
    dropped_outside_plan: int = 0
    quarantine_bytes: int | None = None
    quarantine_sha256: str | None = None

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclass
class QualitySummary:
    """The session's quality score (0..1, None when nothing was measured) and its parts."""

    score: float | None = None
    parts: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # rejected rows per failed check
    weights: dict[str, float] = field(default_factory=dict)
    by_dataset: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Per quality family (``core.quality``): score, checked, violations, threshold, counts,
    # measures and the worst examples; empty in manifests of schema 1.
    families: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Durations:
    fetch_s: float = 0.0
    validate_s: float = 0.0
    publish_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.fetch_s + self.validate_s + self.publish_s


@dataclass
class SourceInfo:
    kind: str  # "simulator" or "terminal"
    terminal_url: str
    api_version: str


@dataclass
class Versions:
    spx_data: str
    pyarrow: str
    pandera: str
    calendar: str

    @classmethod
    def current(cls) -> Versions:
        """The versions installed in this process."""
        from spx_dagster.core.calendar import calendar_version

        return cls(
            spx_data=_installed("spx-data"),
            pyarrow=_installed("pyarrow"),
            pandera=_installed("pandera"),
            calendar=calendar_version(),
        )


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC).replace(microsecond=0)


@dataclass
class Manifest:
    """Everything DESIGN.md says a published session records."""

    session: dt.date
    source: SourceInfo
    versions: Versions
    status: str = STATUS_COMPLETE
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    expirations: dict[str, list[dt.date]] = field(default_factory=dict)  # covered, per root
    quality: QualitySummary = field(default_factory=QualitySummary)
    requests: int = 0
    retries: dict[str, int] = field(default_factory=dict)  # by cause
    no_data: int = 0  # requests answered "no data"
    durations: Durations = field(default_factory=Durations)
    schema_version: int = SCHEMA_VERSION
    created_at: dt.datetime = field(default_factory=_utc_now)
    manifest_version: int = MANIFEST_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # free-form additions (e.g. underlying)
    # When the session was first published, and its vendor-hole revisits (``core.revisits``):
    # both carried across re-publishes; absent (None, []) in manifests written before them.
    first_published_at: dt.datetime | None = None
    revisits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files(self) -> list[FileEntry]:
        return [f for entry in self.datasets.values() for f in entry.files]

    @property
    def rows(self) -> int:
        return sum(entry.rows for entry in self.datasets.values())

    @property
    def bytes(self) -> int:
        return sum(entry.bytes for entry in self.datasets.values())

    @property
    def quarantined_rows(self) -> int:
        return sum(entry.quarantined_rows for entry in self.datasets.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["session"] = self.session.isoformat()
        data["created_at"] = self.created_at.isoformat()
        if self.first_published_at is not None:
            data["first_published_at"] = self.first_published_at.isoformat()
        data["expirations"] = {
            root: [d.isoformat() for d in days] for root, days in self.expirations.items()
        }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        found = data.get("manifest_version")
        if not isinstance(found, int) or found > MANIFEST_VERSION:
            raise ValueError(
                f"manifest_version {found!r} is not one this spx-data reads "
                f"(up to {MANIFEST_VERSION}); upgrade spx-data"
            )
        status = data.get("status", STATUS_COMPLETE)
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        datasets = {
            name: DatasetEntry(
                files=[FileEntry(**f) for f in entry.get("files", [])],
                rows=int(entry.get("rows", 0)),
                quarantined_rows=int(entry.get("quarantined_rows", 0)),
                quarantine_path=entry.get("quarantine_path"),
                dropped_outside_plan=int(entry.get("dropped_outside_plan", 0)),
                quarantine_bytes=entry.get("quarantine_bytes"),
                quarantine_sha256=entry.get("quarantine_sha256"),
            )
            for name, entry in data.get("datasets", {}).items()
        }
        return cls(
            session=dt.date.fromisoformat(data["session"]),
            source=SourceInfo(**data["source"]),
            versions=Versions(**data["versions"]),
            status=status,
            datasets=datasets,
            roots=list(data.get("roots", [])),
            expirations={
                root: [dt.date.fromisoformat(d) for d in days]
                for root, days in data.get("expirations", {}).items()
            },
            quality=QualitySummary(**data.get("quality", {})),
            requests=int(data.get("requests", 0)),
            retries=dict(data.get("retries", {})),
            no_data=int(data.get("no_data", 0)),
            durations=Durations(**data.get("durations", {})),
            schema_version=int(data["schema_version"]),
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            manifest_version=found,
            extra=dict(data.get("extra", {})),
            first_published_at=(
                dt.datetime.fromisoformat(data["first_published_at"])
                if data.get("first_published_at")
                else None
            ),
            revisits=[dict(r) for r in data.get("revisits", [])],
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls.from_dict(json.loads(text))


def write_manifest(
    output_dir: Path,
    manifest: Manifest,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> Path:
    """Write the manifest atomically (the commit point of a publish); return its path."""
    layout = OutputLayout.of(output_dir)
    ensure_dir(layout.manifests_dir(), mode=dir_mode)
    path = layout.manifest_path(manifest.session)
    atomic_write_bytes(path, manifest.to_json().encode("utf-8"), mode=file_mode)
    return path


def read_manifest(path: Path) -> Manifest:
    """Read one manifest file; ManifestError says which file and what is wrong with it."""
    try:
        return Manifest.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(
            f"manifest {path} cannot be read ({type(exc).__name__}: {exc}); the session counts "
            f"as corrupt: re-publish it with `spx-data process DATE --force`"
        ) from exc


def load_manifest(output_dir: Path, session: dt.date) -> Manifest | None:
    """The manifest of ``session``, or None when the session is not published."""
    try:
        return read_manifest(OutputLayout.of(output_dir).manifest_path(session))
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# Fast listing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestSummary:
    """What listings need from a manifest (the fields of ``core.history.PublishedFact``)."""

    session: dt.date
    status: str
    rows: int
    bytes: int
    files: int
    quality: float | None
    seconds: float | None
    created_at: str | None
    dataset_rows: dict[str, int]
    dataset_bytes: dict[str, int]
    underlying_range: float | None = None
    error: str | None = None  # set when the manifest could not be read (the session is corrupt)
    quarantined_rows: int = 0
    file_sizes: tuple[tuple[str, int], ...] = ()  # (path relative to output_dir, bytes)
    holes: int = 0  # ``core.revisits.session_holes``: 0 for a session without vendor holes
    first_published_at: str | None = None  # created_at in manifests written before the field
    revisits: tuple[int, ...] = ()  # after_days of the revisits recorded
    fetch_seconds: float | None = None  # the fetch stage: how long it held the terminal's lanes
    # ``core.cpu_clock.CpuWindow.as_tuple``: the machine's busy CPU from its fetch to its publish
    cpu_window: tuple | None = None

    def size_problems(self, output_dir: Path) -> list[str]:
        """Listed files that are gone or whose size differs from the manifest: one ``stat`` per
        file, so listings show a deleted or truncated file as corrupt before ``verify`` runs
        (checksums stay ``verify``'s job)."""
        problems = []
        for relative, size in self.file_sizes:
            try:
                actual = os.stat(output_dir / relative).st_size
            except FileNotFoundError:
                problems.append(f"{relative} is missing")
                continue
            except OSError as error:
                problems.append(f"{relative} cannot be read ({error.strerror})")
                continue
            if actual != size:
                problems.append(f"{relative} has {actual} bytes, the manifest lists {size}")
        if problems and OutputLayout.of(output_dir).pending_dir(self.session).exists():
            problems.append(
                f"a publish of {self.session} was interrupted after its commit; "
                f"`spx-data verify {self.session}` moves its last files into place"
            )
        return problems

    @classmethod
    def of(cls, manifest: Manifest) -> ManifestSummary:
        underlying_range = manifest.extra.get("underlying_range")
        return cls(
            session=manifest.session,
            status=manifest.status,
            rows=manifest.rows,
            bytes=manifest.bytes,
            files=len(manifest.files),
            quality=manifest.quality.score,
            seconds=manifest.durations.total_s,
            created_at=manifest.created_at.isoformat(),
            dataset_rows={name: e.rows for name, e in manifest.datasets.items()},
            dataset_bytes={name: e.bytes for name, e in manifest.datasets.items()},
            underlying_range=float(underlying_range) if underlying_range is not None else None,
            quarantined_rows=manifest.quarantined_rows,
            file_sizes=tuple((f.path, f.bytes) for f in manifest.files),
            holes=session_holes(manifest.quality) if manifest.status == STATUS_COMPLETE else 0,
            first_published_at=(manifest.first_published_at or manifest.created_at).isoformat(),
            revisits=revisit_days(manifest.revisits),
            fetch_seconds=manifest.durations.fetch_s or None,
            cpu_window=window.as_tuple()
            if (window := window_of_manifest_extra(manifest.extra))
            else None,
        )

    @classmethod
    def unreadable(cls, session: dt.date, error: str) -> ManifestSummary:
        return cls(session, "corrupt", 0, 0, 0, None, None, None, {}, {}, None, error)


def manifest_sessions(output_dir: Path) -> list[dt.date]:
    """Sessions that have a manifest file, oldest first (names only: nothing is read)."""
    directory = OutputLayout.of(output_dir).manifests_dir()
    if not directory.is_dir():
        return []
    days = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                day = parse_session_dirname(entry.name.removesuffix(".json"))
                if day is not None:
                    days.append(day)
    return sorted(days)


def published_sessions(
    output_dir: Path, *, start: dt.date | None = None, end: dt.date | None = None
) -> dict[dt.date, ManifestSummary]:
    """Summaries of every published session (optionally in [start, end]), oldest first.

    A manifest that cannot be read gives a summary with status ``corrupt`` and ``error`` set
    rather than an exception, so one bad file never hides the others. Summaries come from the
    index (``manifest_index``: one file, each entry trusted only while its manifest's stamp
    matches), so listing 3,000 sessions costs a directory listing and one small read.
    """
    from spx_dagster.core.storage.manifest_index import indexed_summaries

    found = {}
    for name, entry in indexed_summaries(output_dir).items():
        day = parse_session_dirname(name.removesuffix(".json"))
        if day is None or (start and day < start) or (end and day > end):
            continue
        found[day] = entry.summary
    return dict(sorted(found.items()))
