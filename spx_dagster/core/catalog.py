"""The DuckDB catalog: an index over the published manifests and views over the parquet.

Derived and rebuildable: ``refresh_catalog`` rewrites every table from the manifests in one
transaction, so a reader sees the old catalog or the new one. Only the ``spx/catalog`` asset
calls it (a DuckDB file has a single writer); readers open the file read-only.

Tables: ``sessions`` (one row per published session), ``files`` (every published file),
``quality`` (each session's score parts, i.e. the quality history). Views: one per dataset over
``<output_dir>/<dataset>/*/*.parquet`` with hive partitioning, so ``date`` is a column.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage import read_manifest
from spx_dagster.core.storage.layout import manifests_dir
from spx_dagster.core.storage.location import local_path

SESSIONS_SCHEMA = pa.schema(
    [
        ("session", pa.date32()),
        ("status", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("files", pa.int32()),
        ("quality_score", pa.float64()),
        ("requests", pa.int64()),
        ("retries", pa.int64()),
        ("no_data_answers", pa.int64()),
        ("fetch_s", pa.float64()),
        ("validate_s", pa.float64()),
        ("publish_s", pa.float64()),
        ("source", pa.string()),
        ("created_at", pa.timestamp("s", tz="UTC")),
        ("manifest", pa.string()),
    ]
)
FILES_SCHEMA = pa.schema(
    [
        ("session", pa.date32()),
        ("dataset", pa.string()),
        ("path", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
    ]
)
QUALITY_SCHEMA = pa.schema(
    [("session", pa.date32()), ("part", pa.string()), ("value", pa.float64())]
)


@dataclass(frozen=True)
class CatalogStats:
    sessions: int
    files: int
    views: tuple[str, ...]
    unreadable: tuple[str, ...]  # manifests that could not be read (skipped, named)
    seconds: float


def _rows_from_manifests(output_dir: Path) -> tuple[dict[str, list], dict[str, list], dict, list]:
    sessions: dict[str, list] = {f.name: [] for f in SESSIONS_SCHEMA}
    files: dict[str, list] = {f.name: [] for f in FILES_SCHEMA}
    quality: dict[str, list] = {f.name: [] for f in QUALITY_SCHEMA}
    unreadable: list[str] = []
    directory = manifests_dir(output_dir)
    paths = sorted(directory.glob("date=*.json")) if directory.is_dir() else []
    for path in paths:
        try:
            m = read_manifest(path)
        except (OSError, ValueError) as error:
            unreadable.append(f"{path}: {error}")
            continue
        row: dict[str, Any] = {
            "session": m.session,
            "status": m.status,
            "rows": m.rows,
            "bytes": m.bytes,
            "files": len(m.files),
            "quality_score": m.quality.score,
            "requests": m.requests,
            "retries": sum(m.retries.values()),
            "no_data_answers": m.no_data,
            "fetch_s": m.durations.fetch_s,
            "validate_s": m.durations.validate_s,
            "publish_s": m.durations.publish_s,
            "source": m.source.kind,
            "created_at": m.created_at,
            "manifest": str(path),
        }
        for name, values in sessions.items():
            values.append(row[name])
        for dataset, entry in m.datasets.items():
            for f in entry.files:
                for name, value in (
                    ("session", m.session),
                    ("dataset", dataset),
                    ("path", f.path),
                    ("rows", f.rows),
                    ("bytes", f.bytes),
                    ("sha256", f.sha256),
                ):
                    files[name].append(value)
        for part, value in {"score": m.quality.score, **m.quality.parts}.items():
            quality["session"].append(m.session)
            quality["part"].append(part)
            quality["value"].append(None if value is None else float(value))
    return sessions, files, quality, unreadable


def dataset_glob(output_dir: Path, dataset: str) -> str:
    """The glob a researcher reads a dataset with (hive partitioning gives the ``date`` column)."""
    return str(local_path(output_dir) / dataset / "date=*" / "*.parquet")


def refresh_catalog(connection: Any, output_dir: Path) -> CatalogStats:
    """Rebuild the catalog in ``connection`` (a DuckDB connection) from ``output_dir``."""
    started = time.monotonic()
    output_dir = local_path(output_dir)
    sessions, files, quality, unreadable = _rows_from_manifests(output_dir)
    tables = {
        "sessions": pa.table(sessions, schema=SESSIONS_SCHEMA),
        "files": pa.table(files, schema=FILES_SCHEMA),
        "quality": pa.table(quality, schema=QUALITY_SCHEMA),
    }
    views = []
    connection.execute("BEGIN TRANSACTION")
    try:
        for name, table in tables.items():
            connection.register(f"_new_{name}", table)
            connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _new_{name}")
            connection.unregister(f"_new_{name}")
        published = set(tables["files"].column("dataset").to_pylist())
        for dataset in DATASETS:
            if dataset in published:
                pattern = dataset_glob(output_dir, dataset).replace("'", "''")
                connection.execute(
                    f"CREATE OR REPLACE VIEW {dataset} AS SELECT * FROM "
                    f"read_parquet('{pattern}', hive_partitioning = true)"
                )
                views.append(dataset)
            else:
                connection.execute(f"DROP VIEW IF EXISTS {dataset}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return CatalogStats(
        sessions=tables["sessions"].num_rows,
        files=tables["files"].num_rows,
        views=tuple(views),
        unreadable=tuple(unreadable),
        seconds=time.monotonic() - started,
    )


def example_query(catalog_file: Path) -> str:
    """A query to try, for the demo and the README."""
    return (
        f'duckdb -readonly {catalog_file} "SELECT date, root, count(*) AS rows, '
        'round(avg(implied_vol), 4) AS avg_iv FROM greeks GROUP BY ALL ORDER BY date, root"'
    )


def latest_session(connection: Any) -> dt.date | None:
    row = connection.execute("SELECT max(session) FROM sessions").fetchone()
    return row[0] if row else None
