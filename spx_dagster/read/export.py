"""Write a result (a stream of Arrow record batches) as CSV, JSON or parquet, in bounded memory.

``write_batches`` streams to any binary file; ``write_file`` writes a temporary file beside the
target and renames it into place only when the whole result is written, so an existing file is
never left half-overwritten by a failed or interrupted query.

JSON is one document: an array of objects, one per row (dates and times as ISO 8601 text, in the
exchange's time zone as stored).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

FORMATS = ("csv", "json", "parquet")
SUFFIXES = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def format_of(path: Path) -> str | None:
    """The format a file name's suffix implies (``.csv``, ``.json``, ``.parquet``), or None."""
    return SUFFIXES.get(path.suffix.lower())


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def write_batches(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], fmt: str, out: BinaryIO
) -> int:
    """Write every batch to ``out`` in ``fmt``; return the number of rows written."""
    rows = 0
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with pacsv.CSVWriter(out, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
    elif fmt == "json":
        out.write(b"[")
        for batch in batches:
            for record in batch.to_pylist():
                out.write(b"\n " if rows == 0 else b",\n ")
                text = json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=False)
                out.write(text.encode("utf-8"))
                rows += 1
        out.write(b"\n]\n" if rows else b"]\n")
    else:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return rows


def write_file(path: Path, write: Callable[[BinaryIO], int]) -> int:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``.

    On any failure (or Ctrl-C) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(descriptor, "wb") as out:
            rows = write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return rows


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
