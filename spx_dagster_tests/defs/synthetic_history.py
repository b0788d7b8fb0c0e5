"""Bulk synthetic history for speed measurements: thousands of manifests and recorded runs.

Only the speed tests use this (publishing 3,000 sessions for real would take hours): manifests
are written with ``core.storage``'s manifest writer, shaped like real ones (three datasets, two
roots, ~40 expirations each, quality parts), and runs are recorded in a real Dagster instance
with the partition and error tags and the final status the session job leaves (without step
events: recording those would take minutes). The data files a manifest lists do not exist, so
nothing here may be verified.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from spx_dagster.core import calendar
from spx_dagster.core.datasets import SCHEMAS
from spx_dagster.core.storage import (
    DatasetEntry,
    Durations,
    FileEntry,
    Manifest,
    QualitySummary,
    SourceInfo,
    Versions,
)
from spx_dagster.core.storage.manifest import write_manifest
from spx_dagster.defs.constants import (
    ERROR_CATEGORY_TAG,
    ERROR_MESSAGE_TAG,
    PARTITION_TAG,
    SESSION_JOB,
)
from spx_dagster.defs.partitions import session_key

FIRST = dt.date(2012, 1, 3)
CATEGORIES = ("rate_limited", "disconnected", "permission", "truncated", "unreachable")
VERSIONS = Versions("0.1.0", "17.0.0", "0.35.0", "exchange-calendars 4.13 XNYS")
SOURCE = SourceInfo("simulator", "http://127.0.0.1:25503", "v3")


@dataclass(frozen=True)
class SyntheticHistory:
    sessions: list[dt.date]  # every session FIRST..last
    published: list[dt.date]
    failed: list[dt.date]  # never published, last run failed
    recovered: list[dt.date]  # published after a failed run
    runs: int


def synthetic_manifest(day: dt.date, index: int) -> Manifest:
    expirations = [day + dt.timedelta(days=7 * k) for k in range(40)]
    datasets = {}
    for name, rows in (("greeks", 900_000), ("eod", 2_400), ("open_interest", 2_400)):
        path = f"{name}/date={day}/part-0.parquet"
        size = rows * 45
        datasets[name] = DatasetEntry(
            files=[FileEntry(path=path, rows=rows, bytes=size, sha256=f"{index:064x}")],
            rows=rows,
        )
    return Manifest(
        session=day,
        source=SOURCE,
        versions=VERSIONS,
        datasets=datasets,
        roots=["SPX", "SPXW"],
        expirations={"SPX": expirations, "SPXW": expirations},
        quality=QualitySummary(
            score=0.97 + (index % 3) / 100,
            parts={"validity": 1.0, "expiration_coverage": 1.0, "zero_quote_rate": 0.2},
            counts={"rows": 904_800, "valid_rows": 904_800},
        ),
        requests=160,
        retries={"rate_limited": index % 2},
        durations=Durations(fetch_s=100.0 + index % 50, validate_s=20.0, publish_s=5.0),
        extra={"underlying_range": 0.005 + (index % 40) / 1000},
    )


@functools.cache
def _empty_parquet(dataset: str) -> bytes:
    """A valid parquet file of ``dataset``'s schema with no rows (DuckDB views bind to it)."""
    sink = pa.BufferOutputStream()
    pq.write_table(SCHEMAS[dataset].empty_table(), sink)
    return sink.getvalue().to_pybytes()


def publish_synthetic(output_dir: Path, manifest: Manifest) -> Manifest:
    """Write ``manifest`` and, for each file it lists, an empty parquet file of the dataset's
    schema, recording that file's real size: listings (which stat every listed file) see the
    session intact and the catalog's views can read every file; checksums do not match, which
    only ``verify`` reads. Returns the manifest as written."""
    for name, entry in manifest.datasets.items():
        blob = _empty_parquet(name)
        files = []
        for file in entry.files:
            path = output_dir / file.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
            files.append(dataclasses.replace(file, bytes=len(blob)))
        entry.files = files
    write_manifest(output_dir, manifest)
    return manifest


def _record_run(instance: dg.DagsterInstance, day: dt.date, *, failed_with: str | None = None):
    tags = {PARTITION_TAG: session_key(day)}
    if failed_with:
        tags[ERROR_CATEGORY_TAG] = failed_with
        tags[ERROR_MESSAGE_TAG] = f"ThetaDataError: {failed_with} while fetching {day}"
    status = dg.DagsterRunStatus.FAILURE if failed_with else dg.DagsterRunStatus.SUCCESS
    instance.add_run(
        dg.DagsterRun(job_name=SESSION_JOB, run_id=str(uuid.uuid4()), status=status, tags=tags)
    )


def build_history(
    instance: dg.DagsterInstance, output_dir: Path, *, published: int = 3000
) -> SyntheticHistory:
    """``published`` sessions with manifests and a successful run each (the oldest missing),
    every 10th unpublished session failed, and every 50th published one failed first."""
    sessions = calendar.sessions_between(FIRST, calendar.latest_closed_session())
    done = sessions[-published:]
    missing = sessions[: len(sessions) - published]
    runs = 0
    recovered = []
    for index, day in enumerate(done):
        publish_synthetic(output_dir, synthetic_manifest(day, index))
        if index % 50 == 0:
            _record_run(instance, day, failed_with=CATEGORIES[index % len(CATEGORIES)])
            recovered.append(day)
            runs += 1
        _record_run(instance, day)
        runs += 1
    failed = missing[::10]
    for index, day in enumerate(failed):
        _record_run(instance, day, failed_with=CATEGORIES[index % len(CATEGORIES)])
        runs += 1
    return SyntheticHistory(sessions, done, failed, recovered, runs)
