"""Pandera schemas per dataset for one session, and the schema-breaking checks before them.

Two kinds of failure, handled differently:

- **Schema-breaking** (a missing or unexpected column, a type that cannot be converted): the
  response does not have the shape this code publishes. ``conform_table`` raises ``SchemaBreak``;
  the asset check "schema conformance" blocks publishing on it.
- **Row-level** (a null key, a negative price, a time outside the session, ...): the row goes to
  quarantine with the failed checks as its reason; the rest of the response is published.
  Implausible rows (a delta of the wrong sign, a crossed quote, ...) are not refused: the quality
  families (``core.quality``) flag them in the published ``flags`` column.

Frames are handed to pandera with Arrow-backed dtypes (``pd.ArrowDtype``): converting is
zero-copy and the element-wise checks run as pyarrow compute kernels.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from spx_dagster.core.calendar import ET, intraday_end
from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.quality.thresholds import Thresholds
from spx_dagster.core.thetadata.vendor import (
    INTERVALS,
    INTRADAY_END,
    INTRADAY_START,
    ROOTS,
    intervals_per_session,
)
from spx_dagster.core.validation._pandera import pandera_pandas as pa_schema

CONTRACT_KEYS = ("root", "expiration", "strike", "right")
RIGHTS = ("C", "P")
# The column that stamps each row; it must be present and inside the session.
STAMP_COLUMN = {
    "greeks": "timestamp",
    "quote": "timestamp",
    "open_interest": "timestamp",
    "greeks_eod": "timestamp",
    "eod": "created",
}
NON_NEGATIVE = (
    "bid",
    "ask",
    "open",
    "high",
    "low",
    "close",
    "underlying_price",
    "implied_vol",
    "bid_size",
    "ask_size",
    "volume",
    "count",
    "open_interest",
)


class SchemaBreak(ValueError):
    """A response whose columns or types do not match the dataset's schema: nothing is published."""

    def __init__(self, dataset: str, source: str, problems: list[str]) -> None:
        self.dataset, self.source, self.problems = dataset, source, problems
        where = f" in {source}" if source else ""
        super().__init__(
            f"{dataset} response{where} does not match the published schema: "
            f"{'; '.join(problems)}. The terminal's answer format changed or the client "
            "mis-parsed it; check thetadata.api_version and update spx-data and ThetaTerminal."
        )


@dataclass(frozen=True)
class ValidationContext:
    """What the checks of one session depend on.

    ``end_time`` is the intraday end requested on a regular session (default 16:00, or 16:15 for
    the SPX options' extra quarter hour); on an early-close session (13:00) the window ends as
    much earlier as the close is.
    """

    session: dt.date
    interval: str = "1m"
    start_time: dt.time = INTRADAY_START
    end_time: dt.time = INTRADAY_END
    # (root, expiration) pairs of the session's plan; rows of other expirations (a wildcard
    # `expiration=*` answer reaches past processing.max_dte) are dropped and counted. None: all.
    planned: frozenset[tuple[str, dt.date]] | None = None
    # The research checks' tolerances (the ``quality.*`` keys).
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(
                f"interval {self.interval!r} is not one of {', '.join(INTERVALS)}; "
                "set processing.interval to one of them"
            )

    @property
    def effective_end(self) -> dt.time:
        return intraday_end(self.session, self.end_time)

    @property
    def intraday_window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last interval stamps of the session, both inclusive, in ET."""
        return (
            pd.Timestamp(dt.datetime.combine(self.session, self.start_time), tz=ET),
            pd.Timestamp(dt.datetime.combine(self.session, self.effective_end), tz=ET),
        )

    @property
    def day_window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The whole session date in ET (for stamps of EOD and open interest)."""
        start = pd.Timestamp(dt.datetime.combine(self.session, dt.time(0)), tz=ET)
        return start, start + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1)

    @property
    def expected_rows_per_contract(self) -> int:
        """Intraday rows per contract: both ends inclusive (391 at 1m on a regular session)."""
        return intervals_per_session(self.interval, start=self.start_time, end=self.effective_end)


def _naive_to_zoned(source: pa.DataType, target: pa.DataType) -> bool:
    return getattr(source, "tz", None) is None and getattr(target, "tz", None) is not None


def conform_table(table: pa.Table, dataset: str, *, source: str = "") -> pa.Table:
    """Return ``table`` with exactly the dataset's columns, in order and type; else SchemaBreak.

    Lossless conversions are applied (int to float, large_string to string, UTC to ET
    timestamps); anything else is a schema break naming every offending column.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    target = DATASETS[dataset].schema
    present = set(table.column_names)
    problems: list[str] = []
    missing = [n for n in target.names if n not in present]
    extra = [n for n in table.column_names if n not in target.names]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(extra)}")
    duplicated = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if duplicated:
        problems.append(f"duplicated column(s) {', '.join(duplicated)}")
    columns = []
    for field in target:
        if field.name not in present or field.name in duplicated:
            continue
        column = table[field.name]
        if column.type == field.type:
            columns.append(column)
            continue
        if pa.types.is_timestamp(column.type) and _naive_to_zoned(column.type, field.type):
            problems.append(
                f"column {field.name} is {column.type} without a time zone, expected "
                f"{field.type} (naive times are ambiguous)"
            )
            continue
        try:
            columns.append(column.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            problems.append(
                f"column {field.name} is {column.type}, expected {field.type}, and cannot be "
                f"converted ({str(exc).splitlines()[0]})"
            )
    if problems:
        raise SchemaBreak(dataset, source, problems)
    return pa.Table.from_arrays(columns, schema=target.remove_metadata())


@functools.lru_cache(maxsize=64)
def build_schema(dataset: str, context: ValidationContext) -> pa_schema.DataFrameSchema:
    """The pandera schema of ``dataset`` for the session of ``context``."""
    ds = DATASETS[dataset]
    stamp = STAMP_COLUMN[dataset]
    window = context.intraday_window if ds.intraday else context.day_window
    window_text = (
        f"{context.start_time:%H:%M}-{context.effective_end:%H:%M} on {context.session}"
        if ds.intraday
        else f"on {context.session}"
    )
    columns: dict[str, pa_schema.Column] = {}
    for field in ds.schema:
        name = field.name
        checks: list[pa_schema.Check] = []
        if name == "root":
            checks.append(
                pa_schema.Check.isin(ROOTS, error=f"root must be one of {'/'.join(ROOTS)}")
            )
        elif name == "right":
            checks.append(pa_schema.Check.isin(RIGHTS, error="right must be C or P"))
        elif name == "strike":
            checks.append(pa_schema.Check.gt(0, error="strike must be > 0"))
        elif name == "expiration":
            checks.append(
                pa_schema.Check.ge(
                    context.session, error=f"expiration must be on or after {context.session}"
                )
            )
        elif name == stamp:
            checks.append(pa_schema.Check.in_range(*window, error=f"{name} must be {window_text}"))
        elif name in NON_NEGATIVE:
            checks.append(pa_schema.Check.ge(0, error=f"{name} must be >= 0"))
        columns[name] = pa_schema.Column(
            pd.ArrowDtype(field.type),
            checks=checks,
            nullable=name not in CONTRACT_KEYS and name != stamp,
            required=True,
        )
    # A delta of the wrong sign or size is implausible, not impossible: the greeks_bounds family
    # flags it (core.quality) and the row is published.
    return pa_schema.DataFrameSchema(
        columns,
        strict=True,
        ordered=False,
        name=f"{dataset} {context.session}",
    )
