"""Lines of an answer that could not be parsed: staged by the fetch, quarantined by validate.

The client skips a line whose values cannot be converted (``#ERR`` where a number belongs, a
wrong number of fields) and hands it over as (line text, reason) once the answer is complete.
The fetch stage stages those lines per request, beside the request's answer::

    <temp>/staging/date=D/<dataset>/_malformed/<ROOT>_<YYYY-MM-DD|ALL>.parquet
        root, expiration (the request's; null for a whole-chain request), line, reason

The validate stage appends them to the dataset's quarantine file: ``raw_line`` holds the line as
the terminal sent it, ``reason`` says why it was refused, root and expiration come from the
request, every other column is null (nothing in the line can be trusted). They count as rows
received and rejected, so they lower the validity part of the quality score like any other
rejected row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage.atomic import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from spx_dagster.core.storage.parquet_io import REASON_COLUMN, write_table_atomic
from spx_dagster.core.validation.quality import ChunkStats

MALFORMED_DIR = "_malformed"
LINE_COLUMN = "line"
# The quarantine file's column with the unparsed line (null for rows pandera rejected).
RAW_LINE_COLUMN = "raw_line"
REASON_PREFIX = "malformed line: "
MALFORMED_SCHEMA = pa.schema(
    [
        pa.field("root", pa.string()),
        pa.field("expiration", pa.date32()),
        pa.field(LINE_COLUMN, pa.string(), nullable=False),
        pa.field(REASON_COLUMN, pa.string(), nullable=False),
    ]
)

# The client's reasons (core/thetadata/wire.py) carry the offending value; the counts per failed
# check must not, or every distinct garbage value would become a check of its own.
_MISSING = re.compile(r"^column (?P<column>'[^']*'): missing value$")
_NOT_VALID = re.compile(r"^column (?P<column>'[^']*'): .* is not a valid (?P<kind>.+)$")
_FIELD_COUNT = re.compile(r"^expected \d+ fields, got \d+$")


def malformed_file(dataset_dir: Path, stem: str) -> Path:
    """Where the malformed lines of one staged answer live (``stem`` as in its part file)."""
    return Path(dataset_dir) / MALFORMED_DIR / f"{stem}.parquet"


def malformed_label(reason: str) -> str:
    """The failed-check label of a malformed line: the client's reason without the value."""
    if match := _MISSING.match(reason):
        return f"{REASON_PREFIX}column {match['column']} is missing"
    if match := _NOT_VALID.match(reason):
        return f"{REASON_PREFIX}column {match['column']} is not a valid {match['kind']}"
    if _FIELD_COUNT.match(reason):
        return f"{REASON_PREFIX}wrong number of fields"
    return REASON_PREFIX.rstrip(": ")


def write_malformed(
    path: Path,
    lines: Iterable[tuple[str, str]],
    *,
    root: str,
    expiration: dt.date | None,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> int:
    """Stage the (line, reason) pairs of one answer at ``path``; return how many.

    With no lines, a file left by an earlier attempt is removed, so the staged lines always
    belong to the staged answer beside them.
    """
    lines = list(lines)
    path = Path(path)
    if not lines:
        path.unlink(missing_ok=True)
        return 0
    table = pa.table(
        {
            "root": pa.array([root] * len(lines), pa.string()),
            "expiration": pa.array([expiration] * len(lines), pa.date32()),
            LINE_COLUMN: pa.array([line for line, _ in lines], pa.string()),
            REASON_COLUMN: pa.array([reason for _, reason in lines], pa.string()),
        },
        schema=MALFORMED_SCHEMA,
    )
    write_table_atomic(path, table, file_mode=file_mode, dir_mode=dir_mode)
    return len(lines)


def read_malformed(path: Path) -> pa.Table | None:
    """The staged malformed lines at ``path``, or None when the answer had none."""
    try:
        return pq.read_table(path, schema=MALFORMED_SCHEMA)
    except FileNotFoundError:
        return None


def quarantine_rows(malformed: pa.Table, dataset: str) -> pa.Table:
    """Malformed lines in the shape of the dataset's quarantine file (see the module docstring)."""
    n = malformed.num_rows
    columns = []
    for field in DATASETS[dataset].schema:
        if field.name in ("root", "expiration"):
            columns.append(malformed[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(n, field.type))
    reasons = [REASON_PREFIX + r for r in malformed[REASON_COLUMN].to_pylist()]
    return pa.Table.from_arrays(
        [*columns, malformed[LINE_COLUMN], pa.array(reasons, pa.string())],
        names=[*DATASETS[dataset].schema.names, RAW_LINE_COLUMN, REASON_COLUMN],
    )


def malformed_stats(malformed: pa.Table, dataset: str) -> ChunkStats:
    """Malformed lines as received-and-rejected rows for the quality score."""
    labels = Counter(malformed_label(r) for r in malformed[REASON_COLUMN].to_pylist())
    return ChunkStats(
        dataset=dataset,
        rows=malformed.num_rows,
        rejected_rows=malformed.num_rows,
        malformed_rows=malformed.num_rows,
        reasons=labels,
    )
