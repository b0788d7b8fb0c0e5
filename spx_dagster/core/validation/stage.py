"""The validated stage of one dataset: every staged response, two at a time.

Each staged part is read, validated, and split into ``<temp_dir>/validated/...`` (valid rows,
written atomically) and the dataset's quarantine file in the same temp stage (rejected rows with
their reason; publishing commits it with the session's other files); the lines
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

import numpy as np
import pyarrow as pa

from spx_dagster.core.datasets import FLAGS_FIELD
from spx_dagster.core.ordered_map import ordered_map
from spx_dagster.core.quality import Family, reconciliation
from spx_dagster.core.quality.evaluate import SESSION_FAMILIES
from spx_dagster.core.quality.thresholds import Thresholds
from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from spx_dagster.core.storage.layout import TempLayout
from spx_dagster.core.storage.parquet_io import QuarantineEntry
from spx_dagster.core.storage.stage_tables import read_stage_table, write_stage_table
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
    session: dt.date,
    dataset: str,
    context: ValidationContext,
    accumulator: QualityAccumulator | None = None,
    *,
    summaries: dict | None = None,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> StageResult:
    """Validate every staged part of ``dataset``; SchemaBreak stops at the first broken part.

    ``summaries``, when given, receives each part's reconciliation summary under
    ``(dataset, part)`` (for ``reconcile_session`` once every dataset is validated).

    On SchemaBreak nothing of this dataset's quarantine is committed, and the validated parts
    already written stay in the temp directory (they are rewritten by the next run).
    """
    started = time.monotonic()
    total = ChunkStats(dataset)
    temp = TempLayout.of(temp_dir)
    parts = temp.staged_parts(session, dataset)
    # Families comparing the parts (expirations) of a session: small summaries per part now,
    # the verdict once every part is validated (``core.quality.evaluate.SessionFamily``).
    limits = context.thresholds
    session_families = [f for f, sf in SESSION_FAMILIES.items() if dataset in sf.datasets]
    parts_of: dict = {family: {} for family in session_families}

    def validate_part(part: Path) -> tuple[pa.Table, ChunkStats, pa.Table | None]:
        source = temp.staged_file(session, dataset, part)
        result = validate_table(read_stage_table(source), dataset, context, source=str(source))
        for family in session_families:
            parts_of[family][part] = SESSION_FAMILIES[family].summarize_part(result.valid, limits)
        if summaries is not None and result.summary is not None:
            summaries[(dataset, part)] = result.summary
        write_stage_table(
            temp.validated_file(session, dataset, part),
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
            temp.validated_quarantine_file(session, dataset),
            session,
            dataset,
            file_mode=file_mode,
            dir_mode=dir_mode,
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
    for family in session_families:
        verdict = _judge_session(
            temp_dir, session, dataset, family, parts_of[family], limits, file_mode, dir_mode
        )
        total.add(verdict)
        if accumulator is not None:
            accumulator.add(verdict)
    if accumulator is not None and not parts:
        accumulator.add(ChunkStats(dataset))
    return StageResult(
        dataset=dataset,
        parts=len(parts),
        stats=total,
        quarantine=quarantine.result,
        seconds=time.monotonic() - started,
    )


def _judge_session(
    temp_dir: Path,
    session: dt.date,
    dataset: str,
    family: Family,
    summaries: dict,
    limits: Thresholds,
    file_mode: int,
    dir_mode: int,
) -> ChunkStats:
    """Run a session family over the parts' summaries and OR its flag into the validated parts
    it names (rewritten atomically; the others are untouched); its result as chunk figures."""
    spec = SESSION_FAMILIES[family]
    result, rows = spec.check_session(summaries, limits)
    temp = TempLayout.of(temp_dir)
    for part, indices in rows.items():
        bits = np.full(len(indices), spec.flag, dtype=np.uint32)
        _or_flags(
            temp.validated_file(session, dataset, part),
            indices,
            bits,
            file_mode,
            dir_mode,
        )
    return ChunkStats(dataset, families={family.value: result})


def reconcile_session(
    temp_dir: Path,
    session: dt.date,
    summaries: dict,
    limits: Thresholds,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> ChunkStats | None:
    """Reconcile the session's datasets from their parts' summaries (``validate_staged_dataset``'s
    ``summaries``), OR the flags it finds into the validated EOD parts, and return its result as
    chunk figures of the first EOD dataset (None when no EOD dataset was validated)."""
    result, rows = reconciliation.reconcile(summaries, limits, session)
    temp = TempLayout.of(temp_dir)
    for (dataset, part), (indices, bits) in rows.items():
        _or_flags(
            temp.validated_file(session, dataset, part),
            indices,
            bits,
            file_mode,
            dir_mode,
        )
    checked = sorted({d for d, _ in summaries if d in reconciliation.EOD_DATASETS})
    if not checked:
        return None
    return ChunkStats(checked[0], families={Family.RECONCILIATION.value: result})


def _or_flags(
    path: Path, indices: np.ndarray, bits: np.ndarray, file_mode: int, dir_mode: int
) -> None:
    """OR ``bits`` into the flags of rows ``indices`` of a validated part (rewritten atomically)."""
    if len(indices) == 0:
        return
    table = read_stage_table(path)
    flags = table.column(FLAGS_FIELD.name).to_numpy().copy()
    flags[np.asarray(indices)] |= np.asarray(bits, dtype=np.uint32)
    table = table.set_column(
        table.schema.get_field_index(FLAGS_FIELD.name), FLAGS_FIELD, pa.array(flags)
    )
    write_stage_table(path, table, file_mode=file_mode, dir_mode=dir_mode)
