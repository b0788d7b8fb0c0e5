"""Where streamed batches go, so that a failed attempt can be taken back.

A request's answer is streamed to a sink batch by batch. When an attempt fails part-way (a dropped
connection, a truncated body), the client calls ``discard()`` and retries the whole request; when
it completes, ``commit()``. A request split into parts (570) commits each part separately, so a
retried part never throws away the parts already complete.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 128 * 1024
PARQUET_COMPRESSION = "zstd"


class BatchSink(Protocol):
    """Receives the typed batches of one fetch."""

    def write(self, batch: pa.RecordBatch) -> None:
        """Take one batch of the attempt in progress."""

    def commit(self) -> None:
        """The attempt (or part) in progress completed: keep what it wrote."""

    def discard(self) -> None:
        """The attempt in progress failed: drop everything written since the last commit."""


class TableSink:
    """Collects batches in memory; for small answers."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._committed: list[pa.RecordBatch] = []
        self._pending: list[pa.RecordBatch] = []

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)

    def commit(self) -> None:
        self._committed.extend(self._pending)
        self._pending = []

    def discard(self) -> None:
        self._pending = []

    def table(self) -> pa.Table:
        return pa.Table.from_batches(self._committed, schema=self.schema)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetSink:
    """Streams batches into parquet segments beside ``path``; ``finish()`` publishes atomically.

    Each committed part is one segment file; ``finish()`` renames a single segment into place or
    merges several (a split request) batch by batch, so memory stays bounded by a row group.
    Temporary files are hidden (``.<name>.<id>.seg``) in the target directory, so the rename is on
    the same filesystem.
    """

    def __init__(self, path: Path, schema: pa.Schema, *, row_group_rows: int = ROW_GROUP_ROWS):
        self.path = Path(path)
        self.schema = schema
        self.row_group_rows = row_group_rows
        self._segments: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._current: Path | None = None
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

    def _temp(self, suffix: str) -> Path:
        return self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.{suffix}")

    def write(self, batch: pa.RecordBatch) -> None:
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        if self._buffered >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._current = self._temp("seg")
            self._writer = pq.ParquetWriter(
                self._current, self.schema, compression=PARQUET_COMPRESSION
            )
        self._writer.write_table(pa.Table.from_batches(self._buffer, schema=self.schema))
        self._buffer, self._buffered = [], 0

    def commit(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._segments.append(self._current)
        self._writer, self._current = None, None

    def discard(self) -> None:
        self._buffer, self._buffered = [], 0
        if self._writer is not None:
            self._writer.close()
        if self._current is not None:
            self._current.unlink(missing_ok=True)
        self._writer, self._current = None, None

    def finish(self) -> int:
        """Publish what was committed at ``path`` (tmp, fsync, rename); return its size in bytes.

        With nothing committed the file holds the schema and no rows.
        """
        self.commit()
        if len(self._segments) == 1:
            ready = self._segments[0]
        else:
            ready = self._temp("tmp")
            with pq.ParquetWriter(ready, self.schema, compression=PARQUET_COMPRESSION) as out:
                for segment in self._segments:
                    for group in pq.ParquetFile(segment).iter_batches(self.row_group_rows):
                        out.write_batch(group)
                if not self._segments:
                    out.write_table(self.schema.empty_table())
        _fsync(ready)
        os.replace(ready, self.path)
        _fsync(self.path.parent)
        for segment in self._segments:
            segment.unlink(missing_ok=True)
        self._segments = []
        return self.path.stat().st_size

    def abort(self) -> None:
        """Remove every temporary file; ``path`` is left as it was."""
        self.discard()
        for segment in self._segments:
            segment.unlink(missing_ok=True)
        self._segments = []
