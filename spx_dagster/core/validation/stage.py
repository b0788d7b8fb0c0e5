"""The validated stage of one dataset: every staged response, two at a time.

Each staged part is read, validated, and split into ``<temp_dir>/validated/...`` (valid rows,
written atomically) and the dataset's quarantine file (rejected rows with their reason); the lines
of the part the client could not parse (``malformed.py``) join the quarantine too. Parts are
validated on ``VALIDATION_WORKERS`` threads (pyarrow, numpy and the parquet codecs release the
GIL for most of a part's work) with at most that many more finished ahead of the one being
recorded, so memory is bounded by a few responses; quarantine rows and statistics are recorded
in part order, as a single thread would. Re-running is safe: every output is rewritten from the
staged parts.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spx_dagster.core.ordered_map import ordered_map
from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from spx_dagster.core.storage.layout import staged_file, staged_parts, validated_file
from spx_dagster.core.storage.parquet_io import QuarantineEntry, write_table_atomic
from spx_dagster.core.validation.malformed import (
    malformed_file,
    malformed_stats,
    quarantine_rows,
    read_malformed,
)
from spx_dagster.core.validation.quality import ChunkStats, QualityAccumulator
from spx_dagster.core.validation.quarantine import DatasetQuarantine
from spx_dagster.core.validation.schemas import ValidationContext
from spx_dagster.core.validation.validate import validate_table

# Two: the machine this is built for has two cores, and each thread holds a response in memory.
VALIDATION_WORKERS = 2


@dataclass
class StageResult:
    dataset: str
    parts: int
    stats: ChunkStats
    quarantine: QuarantineEntry | None
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.stats.rows / self.seconds if self.seconds > 0 else 0.0


def validate_staged_dataset(
    temp_dir: Path,
    output_dir: Path,
    session: dt.date,
    dataset: str,
    context: ValidationContext,
    accumulator: QualityAccumulator | None = None,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> StageResult:
    """Validate every staged part of ``dataset``; SchemaBreak stops at the first broken part.

    On SchemaBreak nothing of this dataset's quarantine is committed, and the validated parts
    already written stay in the temp directory (they are rewritten by the next run).
    """
    started = time.monotonic()
    total = ChunkStats(dataset)
    parts = staged_parts(temp_dir, session, dataset)

    def validate_part(part: Path) -> tuple[pa.Table, ChunkStats, pa.Table | None]:
        source = staged_file(temp_dir, session, dataset, part)
        result = validate_table(pq.read_table(source), dataset, context, source=str(source))
        write_table_atomic(
            validated_file(temp_dir, session, dataset, part),
            result.valid,
            file_mode=file_mode,
            dir_mode=dir_mode,
        )
        return (
            result.rejected,
            result.stats,
            read_malformed(malformed_file(source.parent, part.stem)),
        )

    with (
        DatasetQuarantine(
            output_dir, session, dataset, file_mode=file_mode, dir_mode=dir_mode
        ) as quarantine,
        ThreadPoolExecutor(VALIDATION_WORKERS, thread_name_prefix=f"validate-{dataset}") as pool,
    ):
        for rejected, stats, malformed in ordered_map(
            pool, validate_part, parts, ahead=VALIDATION_WORKERS
        ):
            quarantine.append(rejected)
            chunks = [stats]
            if malformed is not None and malformed.num_rows:
                quarantine.append(quarantine_rows(malformed, dataset))
                chunks.append(malformed_stats(malformed, dataset))
            for chunk in chunks:
                total.add(chunk)
                if accumulator is not None:
                    accumulator.add(chunk)
    if accumulator is not None and not parts:
        accumulator.add(ChunkStats(dataset))
    return StageResult(
        dataset=dataset,
        parts=len(parts),
        stats=total,
        quarantine=quarantine.result,
        seconds=time.monotonic() - started,
    )
