"""Validation of staged responses (pandera per dataset), quarantine and the quality score.

Plain Python (no Dagster). The validated-stage asset calls, per dataset::

    context = ValidationContext(session, interval="1m")
    quality = QualityAccumulator(listed=[(root, exp), ...])
    result = validate_staged_dataset(temp_dir, session, "greeks", context, quality)
    report = quality.report()          # QualityReport(score, parts, counts, ...)

Rows the checks reject and lines the client could not parse (staged by the fetch with
``write_malformed``) land in the temp stage's ``_quarantine/<dataset>.parquet`` with a reason per
row; publishing commits it as ``<output_dir>/_quarantine/date=D/<dataset>.parquet``.
"""

from spx_dagster.core.validation.malformed import (
    RAW_LINE_COLUMN,
    malformed_file,
    read_malformed,
    write_malformed,
)
from spx_dagster.core.validation.quality import (
    QUALITY_WEIGHTS,
    ChunkStats,
    QualityAccumulator,
    QualityReport,
    quality_score,
)
from spx_dagster.core.validation.quarantine import DatasetQuarantine
from spx_dagster.core.validation.schemas import (
    SchemaBreak,
    ValidationContext,
    build_schema,
    conform_table,
)
from spx_dagster.core.validation.stage import (
    StageResult,
    reconcile_session,
    validate_staged_dataset,
)
from spx_dagster.core.validation.validate import ValidationResult, validate_table

__all__ = [
    "QUALITY_WEIGHTS",
    "RAW_LINE_COLUMN",
    "ChunkStats",
    "DatasetQuarantine",
    "QualityAccumulator",
    "QualityReport",
    "SchemaBreak",
    "StageResult",
    "ValidationContext",
    "ValidationResult",
    "build_schema",
    "conform_table",
    "malformed_file",
    "quality_score",
    "read_malformed",
    "reconcile_session",
    "validate_staged_dataset",
    "validate_table",
    "write_malformed",
]
