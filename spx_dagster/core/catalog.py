"""The DuckDB catalog: an index over the committed manifests and views over the committed files.

Derived and rebuildable: ``refresh_catalog`` rewrites every table and view from the manifests in
one transaction, so a reader sees the old catalog or the new one. Only the ``spx/catalog`` asset
calls it on the catalog file (a DuckDB file has a single writer); readers open it read-only.
``spx_dagster.read`` builds the same tables and views in memory with ``build_catalog``: one
builder for both.

Tables: ``sessions`` (one row per committed session), ``files`` (every committed file),
``quality`` (each session's score parts, i.e. the quality history). Views: one per dataset of
``core.datasets.DATASETS`` over exactly the files the manifests list (``core.storage.committed``),
never a glob, so a file no manifest lists is never read; ``date`` is the hive partition column
(typed DATE). A dataset with no committed file is an empty view with the dataset's typed columns.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage.committed import Committed, read_committed
from spx_dagster.core.storage.layout import OutputLayout

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
TABLES = ("sessions", "files", "quality")
# The hive partition column every dataset view adds from the ``date=YYYY-MM-DD`` directory.
DATE_COLUMN = "date"


@dataclass(frozen=True)
class CatalogStats:
    sessions: int
    files: int
    views: tuple[str, ...]  # datasets with at least one committed file
    unreadable: tuple[str, ...]  # manifests that could not be read (skipped, named)
    seconds: float


def manifest_tables(committed: Committed) -> dict[str, pa.Table]:
    """The ``sessions``, ``files`` and ``quality`` tables of the committed manifests."""
    sessions: dict[str, list] = {f.name: [] for f in SESSIONS_SCHEMA}
    files: dict[str, list] = {f.name: [] for f in FILES_SCHEMA}
    quality: dict[str, list] = {f.name: [] for f in QUALITY_SCHEMA}
    for day, m in committed.manifests.items():
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
            "manifest": str(committed.manifest_paths[day]),
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
    return {
        "sessions": pa.table(sessions, schema=SESSIONS_SCHEMA),
        "files": pa.table(files, schema=FILES_SCHEMA),
        "quality": pa.table(quality, schema=QUALITY_SCHEMA),
    }


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duckdb_type(typ: pa.DataType) -> str:
    """The DuckDB type a parquet column of Arrow type ``typ`` reads as (for empty views)."""
    if pa.types.is_timestamp(typ):
        # parquet timestamps with a time zone are stored UTC-adjusted: DuckDB reads TIMESTAMPTZ
        return "TIMESTAMPTZ" if typ.tz else "TIMESTAMP"
    simple = {
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.date32(): "DATE",
        pa.float64(): "DOUBLE",
        pa.float32(): "FLOAT",
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.uint8(): "UTINYINT",
        pa.uint16(): "USMALLINT",
        pa.uint32(): "UINTEGER",
        pa.uint64(): "UBIGINT",
        pa.bool_(): "BOOLEAN",
    }
    if typ not in simple:
        raise TypeError(f"no DuckDB type known for the Arrow type {typ}; add it to duckdb_type")
    return simple[typ]


def parquet_source(paths: Sequence[Path | str]) -> str:
    """``read_parquet`` over exactly ``paths``, with the hive ``date`` column typed DATE."""
    listed = ", ".join(_sql_text(str(p)) for p in paths)
    # union_by_name: sessions published before a column existed (schema 1 had no flags) read
    # with that column NULL.
    return (
        f"read_parquet([{listed}], hive_partitioning = true, "
        f"hive_types = {{'{DATE_COLUMN}': 'DATE'}}, union_by_name = true)"
    )


def dataset_select(dataset: str, paths: Sequence[Path | str]) -> str:
    """The SELECT of a dataset over ``paths``; with no path, no row with the typed columns."""
    if paths:
        return f"SELECT * FROM {parquet_source(paths)}"
    fields = [*DATASETS[dataset].published_schema, pa.field(DATE_COLUMN, pa.date32())]
    columns = ", ".join(f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in fields)
    return f"SELECT {columns} WHERE false"


def build_catalog(connection: Any, committed: Committed) -> tuple[str, ...]:
    """(Re)create the tables and dataset views of ``committed`` in ``connection``.

    The caller owns the transaction. Returns the datasets that have committed files.
    """
    for name, table in manifest_tables(committed).items():
        connection.register(f"_new_{name}", table)
        connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _new_{name}")
        connection.unregister(f"_new_{name}")
    published = []
    for dataset in DATASETS:
        paths = [f.path for f in committed.files(dataset)]
        connection.execute(f"CREATE OR REPLACE VIEW {dataset} AS {dataset_select(dataset, paths)}")
        if paths:
            published.append(dataset)
    return tuple(published)


def refresh_catalog(connection: Any, output_dir: Path) -> CatalogStats:
    """Rebuild the catalog in ``connection`` (a DuckDB connection) from ``output_dir``."""
    started = time.monotonic()
    for attempt in (1, 2):
        committed = read_committed(OutputLayout.of(output_dir).root)
        connection.execute("BEGIN TRANSACTION")
        try:
            views = build_catalog(connection, committed)
            connection.execute("COMMIT")
            break
        except BaseException as error:
            connection.execute("ROLLBACK")
            # Creating a view checks its files exist: one listed by a manifest that a re-publish
            # replaced meanwhile is gone, and the manifests are read again once.
            if attempt == 2 or type(error).__name__ != "IOException":
                raise
    return CatalogStats(
        sessions=len(committed.manifests),
        files=sum(len(m.files) for m in committed.manifests.values()),
        views=views,
        unreadable=tuple(committed.unreadable.values()),
        seconds=time.monotonic() - started,
    )


# A query to try after the demo: through `spx-data sql`, which needs no DuckDB binary.
EXAMPLE_QUERY = (
    "SELECT date, root, count(*) AS rows, round(avg(implied_vol), 4) AS avg_iv "
    "FROM greeks GROUP BY ALL ORDER BY date, root"
)


def latest_session(connection: Any) -> dt.date | None:
    row = connection.execute("SELECT max(session) FROM sessions").fetchone()
    return row[0] if row else None
