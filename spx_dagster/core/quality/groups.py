"""Integer keys, the part's orderings and per-group statistics for the checks that compare
rows (numpy, no loops).

Strike arbitrage, parity, staleness and the calendar summary all work on runs of rows with
equal keys: the rows of one minute in strike order, or one contract's rows in time order.
``layout(table)`` sorts a table into both orders once (cached with its numpy columns inside
``rows.converted_once``), and each check takes the rows it needs from them in that order; the
other helpers turn Arrow key columns into int64 codes and give a group's median, minimum or
running extremes without a Python loop over groups.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.quality.rows import calls, numpy_of, once
from spx_dagster.core.thetadata.vendor import V2_STRIKE_PER_DOLLAR


def key_codes(table: pa.Table, name: str) -> np.ndarray:
    """Column ``name`` as int64 codes that compare equal exactly when the values do.

    Strings become their rank among the column's distinct values (so codes sort like the
    strings), dates days since the epoch, timestamps milliseconds (UTC), floats (strikes)
    thousandths: the vendor's strike unit, so equal strikes are equal codes and the codes sort
    like the strikes.
    """
    column = table.column(name)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        if _one_string(column):
            return np.zeros(len(column), dtype=np.int64)
        encoded = pc.dictionary_encode(column.combine_chunks())
        rank = np.empty(len(encoded.dictionary), dtype=np.int64)
        rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
        indices = numpy_of(pc.fill_null(encoded.indices.cast(pa.int64()), -1))
        if len(rank) == 0:
            return indices
        return np.where(indices >= 0, rank[np.maximum(indices, 0)], -1)
    elif pa.types.is_date32(column.type):
        column = column.cast(pa.int32())
    elif pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp(column.type.unit)).cast(pa.int64())
    elif pa.types.is_floating(column.type):
        values = numpy_of(pc.fill_null(column.cast(pa.float64()), -1.0))
        return np.round(values * V2_STRIKE_PER_DOLLAR).astype(np.int64)
    return numpy_of(pc.fill_null(column.cast(pa.int64()), -1)).astype(np.int64)


def _one_string(column: pa.ChunkedArray) -> bool:
    """True when a string column (one chunk, no nulls) holds one value in every row, from its
    buffers (a part is one root: this is 10x cheaper than encoding it)."""
    if column.num_chunks != 1 or column.null_count or len(column) == 0:
        return False
    lengths, data = string_buffers(column.chunk(0))
    if (lengths != lengths[0]).any():
        return False
    width = int(lengths[0])
    return bool((data[width:] == data[:-width]).all()) if width else True


def string_buffers(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's value lengths and the bytes of its values, as numpy views."""
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=width)
    offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
    data = chunk.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return np.diff(offsets), data[offsets[0] : offsets[-1]]


def fold(*keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """``keys`` (integers, most significant first) folded into as few int64 keys as hold them
    in 62 bits, same order and same equalities; keys of one value drop out."""
    n = len(keys[0])
    folded: list[np.ndarray] = []
    span = 0
    for key in keys:
        low = int(key.min()) if n else 0
        width = (int(key.max()) - low + 1) if n else 1
        if width == 1:
            continue
        if folded and span * width < 1 << 62:
            folded[-1] = folded[-1] * width + (key - low)
            span *= width
        else:
            folded.append(key.astype(np.int64) - low)
            span = width
    return tuple(folded) if folded else (np.zeros(n, dtype=np.int64),)


def lex_order(*keys: np.ndarray) -> np.ndarray:
    """The stable order sorting rows by ``keys`` (most significant first), as ``np.lexsort``
    with the keys reversed, but cheaper: keys are ``fold``-ed, and rows already in order (the
    vendor's contract-major order) are not sorted."""
    order = _order(fold(*keys))
    return np.arange(len(keys[0])) if order is None else order


def _order(folded: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """The stable order of rows by ``folded`` keys; None when they are in order already."""
    if len(folded) == 1:
        if (folded[0][1:] >= folded[0][:-1]).all():
            return None
        return np.argsort(small_ints(folded[0]), kind="stable")
    return np.lexsort(tuple(reversed(folded)))


def starts_of(*keys: np.ndarray) -> np.ndarray:
    """True where a row (of rows already sorted by ``keys``) starts a new group."""
    n = len(keys[0]) if keys else 0
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return change


class Layout:
    """One table's rows in the two orders the checks walk, with the keys they compare.

    - ``by_minute``: rows sorted by (root, expiration, timestamp, strike, call before put),
      ties in row order: a minute's strikes in order, each strike's call then put. Any
      subset of it (``by_minute[mask[by_minute]]``) is that subset in the same order.
    - ``by_contract``: rows sorted by (root, expiration, strike, call before put, timestamp),
      ties in row order; ``contract_starts`` marks (in that order) each contract's first row.
      Published parts arrive in this order, which then costs one pass to confirm.
    - ``minute``: per row, the id of its (root, expiration, timestamp); ids ascend along
      ``by_minute`` (0 … ``n_minutes`` − 1).
    - ``root``, ``expiration``, ``timestamp``, ``strike``: per row, ``key_codes``; ``call``:
      per row, right = "C"; ``single_chain``: one root and expiration (a published part).
    """

    def __init__(self, table: pa.Table) -> None:
        self.root, self.expiration, self.timestamp, self.strike = (
            key_codes(table, name) for name in ("root", "expiration", "timestamp", "strike")
        )
        self.call = calls(table)
        put = (~self.call).view(np.int8)
        n = table.num_rows
        self.single_chain = not fold(self.root, self.expiration)[0].any()
        stamp = _in_minutes(self.timestamp)  # same order, narrower: radix sorts
        contract = fold(self.root, self.expiration, self.strike, put)
        order = _order(fold(*contract, stamp))
        self.contract_sorted = order is None
        self.by_contract = np.arange(n) if order is None else order
        if order is not None:
            contract = tuple(key[order] for key in contract)
        self.contract_starts = starts_of(*contract)
        minute = fold(self.root, self.expiration, stamp)
        # Within one minute, contract order is strike order, call before put: rows in contract
        # order need a stable sort by minute alone.
        order = _order(minute if self.contract_sorted else fold(*minute, self.strike, put))
        self.by_minute = np.arange(n) if order is None else order
        if order is not None:
            minute = tuple(key[order] for key in minute)
        ids = np.cumsum(starts_of(*minute)) - 1
        self.n_minutes = int(ids[-1]) + 1 if n else 0
        self.minute = np.empty(n, dtype=np.int64)
        self.minute[self.by_minute] = ids

    def minute_rows(self) -> np.ndarray:
        """Rows sorted by (root, expiration, timestamp) only, ties in row order."""
        if self.contract_sorted:
            return self.by_minute  # within a minute, row order is strike order already
        return np.argsort(small_ints(self.minute), kind="stable")


def _in_minutes(stamps: np.ndarray) -> np.ndarray:
    """Millisecond codes as whole minutes since the first when all are whole minutes apart
    (bars), else unchanged: the same order and equalities in a narrower range."""
    if len(stamps) == 0:
        return stamps
    since = stamps - stamps.min()
    return since // 60_000 if not (since % 60_000).any() else stamps


def layout(table: pa.Table) -> Layout:
    """The table's ``Layout``, computed once per ``rows.converted_once`` block of it."""
    return once(table, "layout", lambda: Layout(table))


def small_ints(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the narrowest dtype that holds them (numpy sorts 8- and 16-bit
    integers by radix: one pass, stable)."""
    top = int(values.max()) if len(values) else 0
    for dtype in (np.int8, np.int16, np.int32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values


def group_starts(group: np.ndarray) -> np.ndarray:
    """Positions where each run of ``group`` (non-decreasing ids) begins."""
    return np.flatnonzero(starts_of(group))


def group_first_minimum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per group (``group``: non-decreasing ids, 0 … n − 1, none empty), the position of the
    first smallest value, as ``np.lexsort((values, group))[starts]`` gives (NaN sorts last)."""
    if np.isnan(values).any():
        order = np.lexsort((values, group))
        return order[starts_of(group[order])]
    first = group_starts(group)
    lowest = np.minimum.reduceat(values, first) if len(first) else values[:0]
    hits = np.flatnonzero(values == lowest[group])
    return hits[starts_of(group[hits])]


def group_median(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """The median of ``values`` per group id (0 … n_groups − 1); NaN for an empty group.

    When ``group`` is non-decreasing (rows already grouped), groups whose values are all equal
    (a minute's index level, shared by every contract) are answered without sorting them.
    """
    if len(group) and (group[1:] >= group[:-1]).all():
        first = group_starts(group)
        ids = group[first]
        low = np.minimum.reduceat(values, first)
        flat = low == np.maximum.reduceat(values, first)  # False with a NaN
        out = np.full(n_groups, np.nan)
        out[ids[flat]] = low[flat]
        if not flat.all():
            run = np.cumsum(starts_of(group)) - 1
            varied = ~flat[run]
            dense = np.cumsum(starts_of(run[varied])) - 1
            out[ids[~flat]] = _sorted_median(values[varied], dense, int(dense[-1]) + 1)
        return out
    return _sorted_median(values, group, n_groups)


def _sorted_median(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    # The values in order within each group, as np.lexsort((values, group)) would put them
    # (equal values may swap: they are equal), from one sort of the values and a radix pass.
    order = np.argsort(values)
    order = order[np.argsort(small_ints(group[order]), kind="stable")]
    counts = np.bincount(group, minlength=n_groups)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n_groups, np.nan)
    some = counts > 0
    ordered = values[order]
    low = ordered[first[some] + (counts[some] - 1) // 2]
    high = ordered[first[some] + counts[some] // 2]
    out[some] = 0.5 * (low + high)
    return out


def running_range(
    values: np.ndarray, starts: np.ndarray, within: np.ndarray | None = None
) -> np.ndarray:
    """Per row, max − min of ``values`` from its segment's first row up to it.

    Segments are consecutive (``starts`` marks their first rows). Each segment is lifted above
    all earlier ones so that one cumulative max over the whole array never crosses a boundary.
    With ``within`` (a mask of whole segments), only those rows are computed (the others are
    0), each exactly as without it: same lift, same offsets.
    """
    if len(values) == 0:
        return values.copy()
    segment = np.cumsum(starts) - 1
    finite = np.where(np.isfinite(values), values, 0.0)
    lift = 2.0 * float(np.abs(finite).max()) + 1.0
    if within is None:
        rows = slice(None)
        out = None
    else:
        rows = np.flatnonzero(within)
        out = np.zeros(len(values))
        segment, finite = segment[rows], finite[rows]
    offset = segment * lift
    high = np.maximum.accumulate(finite + offset) - offset
    low = -(np.maximum.accumulate(-finite + offset) - offset)
    if out is None:
        return high - low
    out[rows] = high - low
    return out
