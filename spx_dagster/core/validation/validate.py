"""Validate one staged response: valid rows, rejected rows with reasons, and their statistics.

Column checks run in pandera (``build_schema``) with ``lazy=True``; its failure cases (row index
and failed check) become each rejected row's ``reason`` ("check1; check2"). The per-contract
checks (timestamps increasing, rows per contract) run as numpy group operations over one sort of
the contract keys, because pandera's groupby checks cost seconds per chunk.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.datasets import DATASETS, FLAGS_FIELD
from spx_dagster.core.quality import evaluate, reconciliation
from spx_dagster.core.quality.coverage import BarWindow, minute_completeness
from spx_dagster.core.storage.parquet_io import REASON_COLUMN
from spx_dagster.core.validation._pandera import errors as pandera_errors
from spx_dagster.core.validation.quality import ChunkStats
from spx_dagster.core.validation.schemas import (
    CONTRACT_KEYS,
    STAMP_COLUMN,
    SchemaBreak,
    ValidationContext,
    build_schema,
    conform_table,
)

REASON_SEPARATOR = "; "
NOT_INCREASING = "timestamp must increase per contract"


@dataclass
class ValidationResult:
    """One chunk's outcome: ``valid`` has the dataset schema; ``rejected`` adds ``reason``."""

    valid: pa.Table
    rejected: pa.Table
    stats: ChunkStats
    # One row per contract for the session's reconciliation (``core.quality.reconciliation``).
    summary: pa.Table | None = None


def _label(column: object, check: str) -> str:
    # Our checks carry a full sentence ("bid must be >= 0"); pandera's built-ins need the column.
    if " must " in check:
        return check
    if check == "not_nullable":
        return f"{column} must not be null"
    return f"{column}: {check}"


def _pandera_failures(
    frame: pd.DataFrame, schema, dataset: str, source: str
) -> dict[str, np.ndarray]:
    """Row positions per failed check label (empty when every row passes)."""
    try:
        schema.validate(frame, lazy=True)
    except pandera_errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return {}
    index = cases["index"]
    schema_level = cases[index.isna()]
    if len(schema_level):
        problems = sorted(
            {
                f"{c}: {k}"
                for c, k in zip(schema_level["column"], schema_level["check"], strict=True)
            }
        )
        raise SchemaBreak(dataset, source, problems)
    rows = pd.DataFrame(
        {
            "column": cases["column"].astype(object).to_numpy(),
            "check": cases["check"].astype(object).to_numpy(),
            "row": index.astype("int64").to_numpy(),
        }
    )
    failures: dict[str, list[np.ndarray]] = {}
    for (column, check), group in rows.groupby(["column", "check"], dropna=False, sort=False):
        failures.setdefault(_label(column, check), []).append(group["row"].to_numpy())
    return {label: np.unique(np.concatenate(parts)) for label, parts in failures.items()}


def _contract_groups(table: pa.Table, stamp: str | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Group id per row (-1 where a key is null), a sort order by (contract, arrival), groups."""
    n = table.num_rows
    keys_ok = np.ones(n, dtype=bool)
    for name in (*CONTRACT_KEYS, *((stamp,) if stamp else ())):
        if table[name].null_count:
            keys_ok &= ~pc.is_null(table[name]).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(keys_ok)
    if rows.size == 0:
        return np.full(n, -1, dtype=np.int64), rows, 0
    sub = table.take(pa.array(rows)) if rows.size != n else table
    root = pc.fill_null(sub["root"].combine_chunks().dictionary_encode().indices, -1).to_numpy()
    right = pc.fill_null(sub["right"].combine_chunks().dictionary_encode().indices, -1).to_numpy()
    expiration = sub["expiration"].cast(pa.int32()).to_numpy()
    strike = sub["strike"].to_numpy()
    # Dictionary codes follow first appearance, not the alphabet: fine, only equality matters.
    order = np.lexsort((np.arange(rows.size), strike, right, expiration, root))
    keys_sorted = (root[order], right[order], expiration[order], strike[order])
    new_group = np.ones(rows.size, dtype=bool)
    new_group[1:] = np.any([k[1:] != k[:-1] for k in keys_sorted], axis=0)
    group_sorted = np.cumsum(new_group) - 1
    group = np.full(n, -1, dtype=np.int64)
    group[rows[order]] = group_sorted
    return group, rows[order], int(group_sorted[-1]) + 1


def _not_increasing(
    table: pa.Table, stamp: str, order: np.ndarray, group: np.ndarray, rejected: np.ndarray
) -> np.ndarray:
    """Rows whose stamp is not after the previous row of the same contract (in arrival order).

    Rows already rejected (e.g. a stamp outside the session) are left out of the sequence, so
    that one bad stamp does not also condemn its well-placed successor.
    """
    order = order[~rejected[order]]
    if order.size < 2:
        return np.empty(0, dtype=np.int64)
    ts = table[stamp].cast(pa.int64()).to_numpy(zero_copy_only=False)[order]
    same_contract = group[order][1:] == group[order][:-1]
    bad = same_contract & (ts[1:] <= ts[:-1])
    return order[1:][bad]


def _rejected_mask(n: int, failures: dict[str, np.ndarray]) -> np.ndarray:
    rejected = np.zeros(n, dtype=bool)
    for rows in failures.values():
        rejected[rows] = True
    return rejected


def _reasons(n: int, failures: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rejected mask and the reason text of each rejected row (labels in a stable order)."""
    rejected = _rejected_mask(n, failures)
    positions = np.flatnonzero(rejected)
    text = np.full(positions.size, "", dtype=object)
    slot = np.full(n, -1, dtype=np.int64)
    slot[positions] = np.arange(positions.size)
    for label in sorted(failures):
        at = slot[failures[label]]
        text[at] = np.where(text[at] == "", label, text[at] + REASON_SEPARATOR + label)
    return rejected, text


def _quote_counts(valid: pa.Table) -> tuple[int, int, int]:
    if "bid" not in valid.column_names or "ask" not in valid.column_names or not valid.num_rows:
        return 0, 0, 0
    bid, ask = valid["bid"], valid["ask"]
    both = pc.and_(pc.is_valid(bid), pc.is_valid(ask))
    crossed = pc.sum(pc.and_(both, pc.greater(bid, ask))).as_py() or 0
    zero = pc.sum(pc.and_(pc.equal(bid, 0), pc.equal(ask, 0))).as_py() or 0
    return int(pc.sum(both).as_py() or 0), int(crossed), int(zero)


def _expirations(valid: pa.Table) -> set[tuple[str, dt.date]]:
    if not valid.num_rows:
        return set()
    pairs = valid.select(["root", "expiration"]).group_by(["root", "expiration"]).aggregate([])
    return set(zip(pairs["root"].to_pylist(), pairs["expiration"].to_pylist(), strict=True))


def _within_plan(
    table: pa.Table, planned: frozenset[tuple[str, dt.date]] | None
) -> tuple[pa.Table, int]:
    """The rows of planned (root, expiration) pairs, and how many others were dropped.

    processing.max_dte must mean the same for every dataset: a wildcard end-of-day answer
    carries every listed expiration, while the intraday requests name the planned ones.
    """
    if planned is None or table.num_rows == 0:
        return table, 0
    pairs = table.select(["root", "expiration"]).group_by(["root", "expiration"]).aggregate([])
    outside = [
        (root, exp)
        for root, exp in zip(
            pairs["root"].to_pylist(), pairs["expiration"].to_pylist(), strict=True
        )
        if root is not None and exp is not None and (root, exp) not in planned
    ]
    if not outside:
        return table, 0
    mask = None
    for root, exp in outside:
        hit = pc.and_(pc.equal(table["root"], root), pc.equal(table["expiration"], exp))
        mask = hit if mask is None else pc.or_(mask, hit)
    keep = pc.invert(pc.fill_null(mask, False))
    kept = table.filter(keep)
    return kept, table.num_rows - kept.num_rows


def validate_table(
    table: pa.Table, dataset: str, context: ValidationContext, *, source: str = ""
) -> ValidationResult:
    """Split one response into valid and rejected rows; raise SchemaBreak on a schema mismatch.

    Crossed quotes (bid > ask) and zero quotes are counted, not rejected; the valid rows of a
    flagged dataset get their ``flags`` from the quality families (``core.quality``). Intraday
    contracts whose row count differs from ``context.expected_rows_per_contract`` count against
    interval completeness; their rows are kept.
    """
    table = conform_table(table, dataset, source=source)
    table, outside_plan = _within_plan(table, context.planned)
    n = table.num_rows
    intraday = DATASETS[dataset].intraday
    failures = _pandera_failures(
        table.to_pandas(types_mapper=pd.ArrowDtype), build_schema(dataset, context), dataset, source
    )
    group, order, contracts = _contract_groups(table, STAMP_COLUMN[dataset] if intraday else None)
    if intraday:
        already = _rejected_mask(n, failures)
        backwards = _not_increasing(table, STAMP_COLUMN[dataset], order, group, already)
        if backwards.size:
            failures[NOT_INCREASING] = backwards
    rejected_mask, reason_text = _reasons(n, failures)
    valid = table.filter(pa.array(~rejected_mask)) if rejected_mask.any() else table
    rejected = table.filter(pa.array(rejected_mask)).append_column(
        REASON_COLUMN, pa.array(reason_text, type=pa.string())
    )
    complete = None
    valid_group = group[~rejected_mask]
    if intraday:
        kept = valid_group[valid_group >= 0]
        counts = np.bincount(kept, minlength=contracts)
        complete = int(np.count_nonzero(counts == context.expected_rows_per_contract))
    quote_rows, crossed, zero = _quote_counts(valid)
    families: dict = {}
    summary = reconciliation.summarize(valid, dataset, valid_group)
    if DATASETS[dataset].flagged:
        # Implausible is not impossible: such rows are published, each with its flags.
        evaluation = evaluate(valid, dataset, context.session, context.thresholds)
        flags = evaluation.flags.to_numpy().copy()
        families = {family.value: result for family, result in evaluation.families.items()}
        if intraday:
            coverage = minute_completeness(valid, dataset, valid_group, _bar_window(context), flags)
            families[coverage.family.value] = coverage
        valid = valid.append_column(FLAGS_FIELD, pa.array(flags, type=pa.uint32()))
    reasons = {label: int(rows.size) for label, rows in failures.items()}
    stats = ChunkStats(
        dataset=dataset,
        rows=n,
        valid_rows=valid.num_rows,
        rejected_rows=int(rejected_mask.sum()),
        reasons=Counter(reasons),
        quote_rows=quote_rows,
        crossed_rows=crossed,
        zero_quote_rows=zero,
        contracts=contracts,
        complete_contracts=complete,
        expirations=_expirations(valid),
        outside_plan_rows=outside_plan,
        families=families,
    )
    return ValidationResult(valid=valid, rejected=rejected, stats=stats, summary=summary)


def _bar_window(context: ValidationContext) -> BarWindow:
    def ms(at: dt.time) -> int:
        return ((at.hour * 60 + at.minute) * 60 + at.second) * 1000

    return BarWindow(
        ms(context.start_time), ms(context.effective_end), context.expected_rows_per_contract
    )
