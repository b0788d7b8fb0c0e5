"""The temp stages' tables: Arrow IPC files compressed with LZ4.

A staged part is one answer as the client wrote it (``ThetaClient.fetch_to_arrow``, the
``ArrowSink``), read back once by the validate stage. A validated part holds its valid rows
(with their flags) between the validate and the publish stage: written here once (and rewritten
when a session-wide check ORs a flag into it), read back once by the publish stage. Both are
removed with the session's temp directories and never read by anyone else; they are files at
all so that each stage can be re-run or resumed on its own, in another process.

Why not parquet: the day's rows were encoded three times, twice into zstd parquet here and once
into the published file. On a full-chain day (10.6 M rows, ``bench/RESULTS.md``) writing the
validated parts as zstd parquet took 7.3 CPU-seconds, half of the validate stage, and reading
them back 2.0; Arrow IPC with LZ4 takes 2.1 and 0.5, for files 27 % larger (they live minutes,
in ``storage.temp_dir``). Written like every other file: a temp name, fsync, rename, fsync of
the directory (``core.storage.atomic``), so a crash leaves the old part or the new one.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from spx_dagster.core.storage.atomic import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    atomic_writer,
    ensure_dir,
)
from spx_dagster.core.thetadata.sinks import ARROW_COMPRESSION


def write_stage_table(
    path: Path,
    table: pa.Table,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> None:
    """Write ``table`` to ``path`` as an LZ4 Arrow IPC file, atomically and durably."""
    path = Path(path)
    ensure_dir(path.parent, mode=dir_mode)
    options = ipc.IpcWriteOptions(compression=ARROW_COMPRESSION)
    with (
        atomic_writer(path, mode=file_mode) as out,
        ipc.new_file(out, table.schema, options=options) as writer,
    ):
        writer.write_table(table)


def read_stage_table(path: Path) -> pa.Table:
    """Read a table written by ``write_stage_table`` (whole: one part is one expiration)."""
    with pa.OSFile(str(path), "rb") as source:
        return ipc.open_file(source).read_all()
