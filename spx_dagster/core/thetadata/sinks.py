"""Where streamed batches go, so that a failed attempt can be taken back.

A request's answer is streamed to a sink batch by batch. When an attempt fails part-way (a dropped
connection, a truncated body), the client calls ``discard()`` and retries the whole request; when
it completes, ``commit()``. A request split into parts (570) commits each part separately, so a
retried part never throws away the parts already complete.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 128 * 1024
PARQUET_COMPRESSION = "zstd"
ARROW_COMPRESSION = "lz4"


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


class _SegmentFormat(Protocol):
    """How a segment sink writes its files and reads them back to merge them."""

    def writer(self, path: Path, schema: pa.Schema) -> Any:
        """An open writer with ``write_table`` and ``close``."""

    def batches(self, path: Path, rows: int) -> Iterator[pa.RecordBatch]:
        """The file's rows, in batches of at most ``rows``."""


class _Parquet:
    def writer(self, path: Path, schema: pa.Schema) -> pq.ParquetWriter:
        return pq.ParquetWriter(path, schema, compression=PARQUET_COMPRESSION)

    def batches(self, path: Path, rows: int) -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(path).iter_batches(rows)


class _ArrowIpc:
    def writer(self, path: Path, schema: pa.Schema) -> ipc.RecordBatchFileWriter:
        return ipc.new_file(
            str(path), schema, options=ipc.IpcWriteOptions(compression=ARROW_COMPRESSION)
        )

    def batches(self, path: Path, rows: int) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(path), "rb") as source:
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)


class SegmentSink:
    """Streams batches into segment files beside ``path``; ``finish()`` publishes atomically.

    Each committed part is one segment file; ``finish()`` renames a single segment into place or
    merges several (a split request) batch by batch, so memory stays bounded by a row group.
    Temporary files are hidden (``.<name>.<id>.seg``) in the target directory, so the rename is on
    the same filesystem. ``ParquetSink`` and ``ArrowSink`` say which file format.
    """

    format: _SegmentFormat

    def __init__(self, path: Path, schema: pa.Schema, *, row_group_rows: int = ROW_GROUP_ROWS):
        self.path = Path(path)
        self.schema = schema
        self.row_group_rows = row_group_rows
        self._segments: list[Path] = []
        self._writer: Any = None
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
            self._writer = self.format.writer(self._current, self.schema)
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
            out = self.format.writer(ready, self.schema)
            try:
                for segment in self._segments:
                    for batch in self.format.batches(segment, self.row_group_rows):
                        out.write_table(pa.Table.from_batches([batch], schema=self.schema))
                if not self._segments:
                    out.write_table(self.schema.empty_table())
            finally:
                out.close()
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


class ParquetSink(SegmentSink):
    """A segment sink writing one zstd parquet file (``ThetaClient.fetch_to_parquet``)."""

    format = _Parquet()


class ArrowSink(SegmentSink):
    """A segment sink writing one LZ4 Arrow IPC file (``ThetaClient.fetch_to_arrow``): the
    session's staged answers, written once and read back once by the validate stage, at a
    quarter of parquet's encoding cost (``core.storage.stage_tables``)."""

    format = _ArrowIpc()
