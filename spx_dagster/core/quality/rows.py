"""The columns the checks read, as numpy arrays, and the worst-examples picker they share."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.quality.families import EXAMPLES_PER_FAMILY, Example

MS_PER_YEAR = 365.0 * 86_400_000
EXPIRY_MS_OF_DAY = 16 * 3_600_000  # options are valued to 16:00 ET of their expiration day
MIN_YEARS = 30_000 / MS_PER_YEAR  # thirty seconds: at expiry the time value is nil anyway


_converted = threading.local()


class _Derived:
    """What the families derived from one table's data: numpy columns, orderings, forwards."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table  # held, so that its buffers (the identity of the data) stay unique
        self.values: dict[Hashable, Any] = {}


def _buffers(column: pa.ChunkedArray) -> list[tuple[int, int, tuple[int, ...]]]:
    return [
        (chunk.offset, len(chunk), tuple(b.address if b else 0 for b in chunk.buffers()))
        for chunk in column.chunks
    ]


def _same_data(held: pa.Table, table: pa.Table) -> bool:
    """True when every column of ``held`` is in ``table`` with the very same buffers (Arrow
    memory is immutable, and ``held`` keeps its own alive, so same buffers are same values)."""
    if held is table:
        return True
    if held.num_rows != table.num_rows:
        return False
    names = set(table.column_names)
    return all(
        name in names and _buffers(held.column(name)) == _buffers(table.column(name))
        for name in held.column_names
    )


@contextlib.contextmanager
def converted_once(table: pa.Table) -> Iterator[None]:
    """Within the block, what the families derive from ``table`` (each numpy column, the
    orderings of ``groups.layout``, the parity forwards) is computed once however many
    families ask for it (per thread: validation evaluates parts on several).

    The entries stay parked after the block until the thread's next block: a block on the same
    data (the same columns, e.g. the part with its ``flags`` appended, as the calendar summary
    gets it right after ``evaluate``) finds them; a block on other data drops them. At most
    one part per thread is held this way.
    """
    held = getattr(_converted, "held", None)
    if held is None or not _same_data(held.table, table):
        held = _converted.held = _Derived(table)
    outer = getattr(_converted, "active", None)
    _converted.active = (table, held)
    try:
        yield
    finally:
        _converted.active = outer


def once(table: pa.Table, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept under ``key`` while in a ``converted_once`` block of ``table``
    (computed anew outside one, or for another table); never write to what it returns."""
    active = getattr(_converted, "active", None)
    if active is None or active[0] is not table:
        return compute()
    values = active[1].values
    if key not in values:
        values[key] = compute()
    return values[key]


def numpy_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as numpy; zero-copy (and read-only) where Arrow allows, numbers without
    nulls: ``ChunkedArray.to_numpy`` copies even a column of one chunk, which costs more than
    the check that reads it."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks != 1:
            return column.to_numpy()
        column = column.chunk(0)
    if column.null_count == 0 and (
        pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    ):
        return column.to_numpy()  # zero_copy_only=False would take the slower pandas path
    return column.to_numpy(zero_copy_only=False)


def floats(table: pa.Table, name: str) -> np.ndarray:
    """A float column as numpy, nulls as NaN (so every comparison with them is False); the
    array is shared, never write to it."""
    return once(table, ("floats", name), lambda: _floats(table, name))


def _floats(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if column.type != pa.float64():
        column = column.cast(pa.float64())
    if column.null_count:
        column = pc.fill_null(column, np.nan)
    return numpy_of(column)


def calls(table: pa.Table) -> np.ndarray:
    """True on the rows of calls (``right`` = "C"), per row; shared, never write to it."""
    return once(table, "calls", lambda: _calls(table.column("right")))


def _calls(right: pa.ChunkedArray) -> np.ndarray:
    from spx_dagster.core.quality.groups import string_buffers

    if right.num_chunks == 1 and not right.null_count and pa.types.is_string(right.type):
        lengths, data = string_buffers(right.chunk(0))
        if (lengths == 1).all():  # one byte per row ("C" or "P"): compare the bytes
            return data == ord("C")
    return numpy_of(pc.equal(right, "C"))


def two_sided(table: pa.Table) -> np.ndarray:
    """True on the rows quoted on both sides and not crossed (bid > 0, ask ≥ bid): the quotes
    the arbitrage and parity checks compare; shared, never write to it."""

    def compute() -> np.ndarray:
        bid, ask = floats(table, "bid"), floats(table, "ask")
        return (bid > 0) & (ask >= bid)

    return once(table, "two_sided", compute)


def has(table: pa.Table, *names: str) -> bool:
    present = set(table.schema.names)
    return all(n in present for n in names)


def years_to_expiry(table: pa.Table) -> np.ndarray:
    """Years from each row's time (ET wall clock) to 16:00 ET of its expiration day; shared,
    never write to it."""
    return once(table, "years", lambda: _years_to_expiry(table))


def _years_to_expiry(table: pa.Table) -> np.ndarray:
    expiry_ms = numpy_of(table.column("expiration").cast(pa.int32())).astype(np.int64) * 86_400_000
    # An end-of-day row without a time is valued at that day's close.
    stamped = "timestamp" in table.column_names
    now_ms = local_ms(table.column("timestamp")) if stamped else expiry_ms
    years = (expiry_ms + EXPIRY_MS_OF_DAY - now_ms) / MS_PER_YEAR
    return np.maximum(years, MIN_YEARS)


def local_ms(stamps: pa.ChunkedArray) -> np.ndarray:
    """Milliseconds of ET wall-clock time of zoned timestamps (nulls: 0).

    One session's rows share one UTC offset (clocks change at 2 AM), so the offset is looked up
    once instead of per row (``pc.local_timestamp`` costs more than the checks that need it);
    rows spanning two offsets take the per-row path.
    """
    utc = numpy_of(pc.fill_null(stamps.cast(pa.timestamp(stamps.type.unit)).cast(pa.int64()), 0))
    if stamps.type.unit != "ms":
        return pc.fill_null(pc.local_timestamp(stamps).cast(pa.int64()), 0).to_numpy()
    if len(utc) == 0 or stamps.type.tz is None:
        return utc
    zone = ZoneInfo(stamps.type.tz)
    first, last = (
        dt.datetime.fromtimestamp(v / 1000, tz=zone).utcoffset() for v in (utc.min(), utc.max())
    )
    if first != last:
        return pc.fill_null(pc.local_timestamp(stamps).cast(pa.int64()), 0).to_numpy()
    return utc + int(first.total_seconds() * 1000)


def worst_examples(
    table: pa.Table,
    dataset: str,
    rows: np.ndarray,
    severity: np.ndarray,
    describe: Callable[[np.ndarray], list[str]],
) -> list[Example]:
    """The ``EXAMPLES_PER_FAMILY`` rows of ``rows`` with the largest ``severity``;
    ``describe(positions)`` words the picked ones (positions into ``rows``), so that only the
    few examples ever become Python strings."""
    if len(rows) == 0:
        return []
    order = np.argsort(-severity, kind="stable")[:EXAMPLES_PER_FAMILY]
    details = describe(order)
    wanted = [n for n in ("root", "expiration", "strike", "right", "timestamp") if has(table, n)]
    picked = table.select(wanted).take(pa.array(rows[order]))
    stamps = (
        picked.column("timestamp").to_pylist()
        if "timestamp" in picked.column_names
        else [None] * len(order)
    )
    out = []
    for i, at in enumerate(order):
        expiration = picked.column("expiration")[i].as_py()
        out.append(
            Example(
                dataset=dataset,
                root=picked.column("root")[i].as_py(),
                expiration=expiration,
                strike=float(picked.column("strike")[i].as_py()),
                right=picked.column("right")[i].as_py(),
                timestamp=stamps[i],
                detail=details[i],
                severity=float(severity[at]),
            )
        )
    return out
