"""Parquet files of the temp stages, the published datasets and the quarantine.

Published files are written by ``PublishedDatasetWriter``: one file per dataset and session, one
row group per chunk (a staged response, i.e. one expiration), each chunk sorted by the dataset's
sort keys, so memory is bounded by one expiration, never by the day. The file is hashed while it is
written, and waits under ``_pending/`` until the manifest that lists it is committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spx_dagster.core.datasets import DATASETS, FLAGS_FIELD, SCHEMA_VERSION
from spx_dagster.core.ordered_map import ordered_map
from spx_dagster.core.quality import evaluate
from spx_dagster.core.storage.atomic import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    HashingFile,
    atomic_writer,
    commit_temp,
    discard_temp,
    ensure_dir,
    fsync_dir,
    open_temp,
    write_checksum_sidecar,
)
from spx_dagster.core.storage.layout import OutputLayout, TempLayout
from spx_dagster.core.storage.manifest import DatasetEntry, FileEntry
from spx_dagster.core.storage.stage_tables import read_stage_table

COMPRESSION = "zstd"  # ``write_table_atomic``: the quarantine and the staged malformed lines
META_SCHEMA_VERSION = b"spx_data.schema_version"
META_DATASET = b"spx_data.dataset"
META_SESSION = b"spx_data.session"
REASON_COLUMN = "reason"


@dataclass(frozen=True)
class WriterOptions:
    """How a published dataset's file is encoded: codec, level and per-column encodings.

    Resolved once per dataset in ``PUBLISHED_WRITER_OPTIONS``; ``bench/compression.py``
    measures candidates with this same class (its figures are in ``bench/RESULTS.md``).
    ``no_dictionary`` names columns never dictionary encoded (the others start with a dictionary
    and fall back to plain pages when it outgrows its page); ``byte_stream_split`` names columns
    encoded ``BYTE_STREAM_SPLIT``, which pyarrow applies only without a dictionary, so they must
    be in ``no_dictionary`` too. ``column_levels`` overrides ``compression_level`` per column.
    ``row_group_rows`` caps a row group (``None``: one per chunk).
    """

    compression: str = "zstd"
    compression_level: int | None = None  # None: the codec's default (zstd: 1)
    byte_stream_split: tuple[str, ...] = ()
    no_dictionary: tuple[str, ...] = ()
    column_levels: tuple[tuple[str, int], ...] = ()  # (column, level)
    row_group_rows: int | None = None

    def parquet_kwargs(self, schema: pa.Schema) -> dict:
        """Keyword arguments of ``pyarrow.parquet.ParquetWriter`` for a file of ``schema``."""
        names = set(schema.names)
        levels = dict(self.column_levels)
        named = set(self.byte_stream_split) | set(self.no_dictionary) | set(levels)
        unknown = sorted(named - names)
        if unknown:
            raise ValueError(
                f"writer options name columns {unknown} that the schema does not have "
                f"(columns: {', '.join(schema.names)}); name existing columns only"
            )
        dictionary_first = sorted(set(self.byte_stream_split) - set(self.no_dictionary))
        if dictionary_first:
            raise ValueError(
                f"byte_stream_split names {dictionary_first} without listing them in "
                "no_dictionary: pyarrow would dictionary-encode them and never split them; "
                "add them to no_dictionary"
            )
        kwargs: dict = {"compression": self.compression}
        if levels:
            default = 1 if self.compression_level is None else self.compression_level
            kwargs["compression_level"] = {n: levels.get(n, default) for n in schema.names}
        elif self.compression_level is not None:
            kwargs["compression_level"] = self.compression_level
        if self.byte_stream_split:
            kwargs["use_byte_stream_split"] = list(self.byte_stream_split)
        if self.no_dictionary:
            kwargs["use_dictionary"] = [n for n in schema.names if n not in self.no_dictionary]
        return kwargs

    def row_group_size(self, rows: int) -> int:
        """Rows per row group for a chunk of ``rows`` rows."""
        return max(1, min(rows, self.row_group_rows or rows))


# Float columns whose values rarely repeat within an expiration (4 decimals of a higher-order
# greek: 0.45-0.92 distinct values per row on a full chain); the others (bid, ask, delta, theta, IV,
# the underlying, strikes) fit a dictionary page.
UNREPEATED_FLOATS: dict[str, tuple[str, ...]] = {"greeks": ("vega", "rho", "epsilon", "lambda")}
UNREPEATED_LEVEL = 3


def _published_writer_options(dataset: str) -> WriterOptions:
    """The encoding of ``dataset``'s published files: zstd, and the float columns whose values
    rarely repeat without a dictionary and at level 3; every other column as before (level 1,
    dictionary first), so the scans that do not read those columns read the same pages.

    Measured on a full-chain session (``bench/compression.py``; the table is in
    ``bench/RESULTS.md``): such a column outgrows its dictionary page a few thousand rows into an
    expiration, and the dictionary-then-plain pages it leaves compress worse than plain pages
    from the start (4.46 : 1 became 6.7 : 1, written faster). ``BYTE_STREAM_SPLIT`` breaks the
    repeated 8-byte patterns zstd finds and comes out larger; no dictionary on every float, or
    level 3 on every column, made DuckDB's scans slower; levels above 3 add little and write
    slower.
    """
    unrepeated = UNREPEATED_FLOATS.get(dataset, ())
    return WriterOptions(
        no_dictionary=unrepeated,
        column_levels=tuple((name, UNREPEATED_LEVEL) for name in unrepeated),
    )


PUBLISHED_WRITER_OPTIONS: dict[str, WriterOptions] = {
    name: _published_writer_options(name) for name in DATASETS
}


def file_metadata(dataset: str, session: dt.date) -> dict[bytes, bytes]:
    """Key-value metadata written into every published and quarantine file."""
    return {
        META_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
        META_DATASET: dataset.encode(),
        META_SESSION: session.isoformat().encode(),
    }


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    rows: int
    bytes: int
    sha256: str


def write_table_atomic(
    path: Path,
    table: pa.Table,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
    metadata: dict[bytes, bytes] | None = None,
) -> WrittenFile:
    """Write ``table`` to ``path`` as zstd parquet, atomically (temp, fsync, rename)."""
    path = Path(path)
    ensure_dir(path.parent, mode=dir_mode)
    schema = table.schema
    if metadata:
        schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
    with (
        atomic_writer(path, mode=file_mode) as out,
        pq.ParquetWriter(out, schema, compression=COMPRESSION) as writer,
    ):
        writer.write_table(
            table.replace_schema_metadata(schema.metadata),
            row_group_size=max(1, table.num_rows),
        )
    return WrittenFile(path, table.num_rows, out.size, out.sha256)


def sort_chunk(table: pa.Table, dataset: str) -> pa.Table:
    """Sort one chunk by the dataset's sort keys (root, expiration, strike, right[, timestamp])."""
    keys = [(k, "ascending") for k in DATASETS[dataset].sort_keys if k in table.column_names]
    return table.sort_by(keys) if table.num_rows > 1 else table


class PublishedDatasetWriter:
    """Streams a dataset's chunks of one session into a single published parquet file.

    Usage::

        with PublishedDatasetWriter(output_dir, session, "greeks") as writer:
            for table in chunks:            # in (root, expiration) order
                writer.write(table)
        entry = writer.entry                # DatasetEntry for the manifest

    ``close()`` renames the finished file to the pending copy of
    ``<dataset>/date=D/<dataset>.parquet`` and writes its ``.sha256`` sidecar beside it; the
    published file is untouched until ``commit_manifest`` renames the pending one over it. A
    dataset without rows publishes no file.
    On an exception the temp file is removed.
    """

    def __init__(
        self,
        output_dir: Path,
        session: dt.date,
        dataset: str,
        *,
        file_mode: int = DEFAULT_FILE_MODE,
        dir_mode: int = DEFAULT_DIR_MODE,
    ) -> None:
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
        self.layout = layout = OutputLayout.of(output_dir)
        self.output_dir = layout.root
        self.session = session
        self.dataset = dataset
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self.final = layout.published_file(dataset, session)
        self.pending = layout.pending_path(session, self.final)
        self.directory = self.pending.parent
        self.schema = DATASETS[dataset].published_schema.with_metadata(
            file_metadata(dataset, session)
        )
        self.options = PUBLISHED_WRITER_OPTIONS[dataset]
        self.rows = 0
        self.row_groups = 0
        self.entry: DatasetEntry | None = None
        self._temp: HashingFile | None = None
        self._writer: pq.ParquetWriter | None = None

    def prepare(self, table: pa.Table) -> pa.Table:
        """One chunk in the published column order, types and sort (safe on another thread).

        A chunk of a flagged dataset that did not come through validation (no ``flags`` column)
        gets its flags here: no published row of such a dataset goes out unchecked.
        """
        if FLAGS_FIELD.name in self.schema.names and FLAGS_FIELD.name not in table.column_names:
            flags = evaluate(table, self.dataset, self.session).flags
            table = table.append_column(FLAGS_FIELD, flags)
        return sort_chunk(table.select(self.schema.names).cast(self.schema), self.dataset)

    def write(self, table: pa.Table, *, prepared: bool = False) -> None:
        """Append one chunk as one row group, sorted unless ``prepared`` (empty ones skipped)."""
        if table.num_rows == 0:
            return
        chunk = table if prepared else self.prepare(table)
        if self._writer is None:
            ensure_dir(self.directory, mode=self.dir_mode)
            self._temp = open_temp(self.directory, f"{self.dataset}.parquet", mode=self.file_mode)
            self._writer = pq.ParquetWriter(
                self._temp, self.schema, **self.options.parquet_kwargs(self.schema)
            )
        row_group_size = self.options.row_group_size(chunk.num_rows)
        self._writer.write_table(chunk, row_group_size=row_group_size)
        self.rows += chunk.num_rows
        self.row_groups += -(-chunk.num_rows // row_group_size)

    def close(self) -> DatasetEntry:
        """Finish the file, give it its content name and sidecar; return the manifest entry."""
        if self.entry is not None:
            return self.entry
        if self._writer is None or self._temp is None:
            self.entry = DatasetEntry(files=[], rows=0)
            return self.entry
        self._writer.close()
        temp = self._temp
        commit_temp(temp, self.pending)
        # The sidecar names the published file: ``sha256sum -c`` runs where it will lie.
        write_checksum_sidecar(self.pending, temp.sha256, mode=self.file_mode)
        fsync_dir(self.directory)
        self.entry = DatasetEntry(
            files=[
                FileEntry(
                    path=self.layout.relative_to_output(self.final),
                    rows=self.rows,
                    bytes=temp.size,
                    sha256=temp.sha256,
                )
            ],
            rows=self.rows,
        )
        return self.entry

    def abort(self) -> None:
        """Drop the unfinished file."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # may be broken already; the temp goes anyway
                self._writer.close()
        if self._temp is not None:
            discard_temp(self._temp)
        self._writer = self._temp = None

    def __enter__(self) -> PublishedDatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def publish_dataset(
    output_dir: Path,
    session: dt.date,
    dataset: str,
    tables: Iterable[pa.Table],
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> DatasetEntry:
    """Write a dataset's chunks as the session's pending file; return its manifest entry.

    Call inside ``session_lock`` and follow with ``commit_manifest``: until the manifest naming
    the new file is committed it waits under ``_pending/`` and the old session stays published.
    """
    with (
        PublishedDatasetWriter(
            output_dir, session, dataset, file_mode=file_mode, dir_mode=dir_mode
        ) as writer,
        ThreadPoolExecutor(1, thread_name_prefix=f"sort-{dataset}") as pool,
    ):
        # The next chunk is sorted while this one is encoded and written.
        for chunk in ordered_map(pool, writer.prepare, tables, ahead=1):
            writer.write(chunk, prepared=True)
    assert writer.entry is not None
    return writer.entry


def iter_validated_tables(temp_dir: Path, session: dt.date, dataset: str) -> Iterator[pa.Table]:
    """The validated parts of a dataset, one table at a time, in (root, expiration) order; the
    next part is read on another thread while the caller writes this one."""
    temp = TempLayout.of(temp_dir)
    files = [
        temp.validated_file(session, dataset, p) for p in temp.validated_parts(session, dataset)
    ]
    with ThreadPoolExecutor(1, thread_name_prefix=f"read-{dataset}") as pool:
        yield from ordered_map(pool, read_stage_table, files, ahead=1)


@dataclass(frozen=True)
class QuarantineEntry:
    path: Path
    rows: int


class QuarantineWriter:
    """Collects a dataset's rejected rows (with ``reason``) into one quarantine parquet file.

    Rows are streamed to a temp file as they come, and the file is renamed to ``path`` (in the
    temp stage: publishing commits it with the session) on ``close()``. A run with no rejected
    rows removes the file a previous run may have left, so it always describes the latest run.
    """

    def __init__(
        self,
        path: Path,
        session: dt.date,
        dataset: str,
        *,
        file_mode: int = DEFAULT_FILE_MODE,
        dir_mode: int = DEFAULT_DIR_MODE,
    ) -> None:
        self.path = Path(path)
        # Every column nullable: a row may be here precisely because a key is null.
        self.schema = pa.schema(
            [f.with_nullable(True) for f in DATASETS[dataset].schema]
            + [pa.field(REASON_COLUMN, pa.string(), nullable=False)],
            metadata=file_metadata(dataset, session),
        )
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self.rows = 0
        self.result: QuarantineEntry | None = None
        self._temp: HashingFile | None = None
        self._writer: pq.ParquetWriter | None = None

    def append(self, rejected: pa.Table) -> None:
        if rejected.num_rows == 0:
            return
        chunk = rejected.select(self.schema.names).cast(self.schema)
        if self._writer is None:
            ensure_dir(self.path.parent, mode=self.dir_mode)
            self._temp = open_temp(self.path.parent, self.path.name, mode=self.file_mode)
            self._writer = pq.ParquetWriter(self._temp, self.schema, compression=COMPRESSION)
        self._writer.write_table(chunk, row_group_size=chunk.num_rows)
        self.rows += chunk.num_rows

    def close(self) -> QuarantineEntry | None:
        """Commit the quarantine file (or remove a stale one); None when nothing was rejected."""
        if self._writer is None or self._temp is None:
            if self.path.exists():
                self.path.unlink()
                fsync_dir(self.path.parent)
            return None
        self._writer.close()
        commit_temp(self._temp, self.path)
        self._writer = self._temp = None
        self.result = QuarantineEntry(self.path, self.rows)
        return self.result

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # already broken; the temp file goes anyway
                self._writer.close()
        if self._temp is not None:
            discard_temp(self._temp)
        self._writer = self._temp = None

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
