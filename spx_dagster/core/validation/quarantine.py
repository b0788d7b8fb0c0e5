"""The quarantine file of one dataset and session: every row refused, with the reason per row.

``<output_dir>/_quarantine/date=D/<dataset>.parquet`` (collected in the temp stage by validation,
committed with the session by publishing) holds the dataset's columns (all nullable),
then ``raw_line`` (the line as the terminal sent it, for lines the client could not parse; null
for rows that parsed but failed a check) and ``reason`` (the failed checks, ``"; "``-separated).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from spx_dagster.core.storage.parquet_io import REASON_COLUMN, QuarantineWriter
from spx_dagster.core.validation.malformed import RAW_LINE_COLUMN


class DatasetQuarantine(QuarantineWriter):
    """``QuarantineWriter`` with the ``raw_line`` column before ``reason``.

    Rows rejected by the checks come without ``raw_line`` and get it null; malformed lines come
    with it (``malformed.quarantine_rows``). Committed on ``close()``; a run with nothing refused
    removes the file an earlier run left.
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
        super().__init__(path, session, dataset, file_mode=file_mode, dir_mode=dir_mode)
        columns = [f for f in self.schema if f.name != REASON_COLUMN]
        self.schema = pa.schema(
            [
                *columns,
                pa.field(RAW_LINE_COLUMN, pa.string()),
                self.schema.field(REASON_COLUMN),
            ],
            metadata=self.schema.metadata,
        )

    def append(self, rejected: pa.Table) -> None:
        if rejected.num_rows and RAW_LINE_COLUMN not in rejected.column_names:
            rejected = rejected.append_column(
                RAW_LINE_COLUMN, pa.nulls(rejected.num_rows, pa.string())
            )
        super().append(rejected)
