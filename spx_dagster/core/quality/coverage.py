"""``coverage``: is all the data there? Three parts, one family.

- *Minutes per contract* (per part of an intraday dataset): a contract with fewer bars than the
  session's window holds (09:30 to the close at ``processing.interval``) has a hole; its rows are
  flagged ``incomplete_bars``, so ``WHERE flags & 65536 = 0`` keeps only complete contracts.
- *Listing* (per session): the expirations the era's listing rules promise within
  ``listing_horizon_days`` (``listing_rules.py``) against those the vendor listed, and the listed
  ones against those with data (a no-data answer for a listed expiration is a vendor hole).
- *Drift* (per session): the session's contract count against the median of the previous
  ``drift_sessions`` published sessions; beyond a factor of ``drift_ratio`` either way, a chain
  shrank or grew suspiciously (a strike range cut off, a root missing).

Score: 1 − violations / checked, over contracts, expected-or-listed expirations and the drift
test (one check) together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality.families import EXAMPLES_PER_FAMILY, Example, Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.rows import local_ms
from spx_dagster.core.quality.thresholds import Thresholds

MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class BarWindow:
    """The bars every intraday contract should have: ``expected`` stamps from ``first_ms`` to
    ``last_ms`` (ET milliseconds of the day, both inclusive)."""

    first_ms: int
    last_ms: int
    expected: int

    @property
    def step_ms(self) -> int:
        return (self.last_ms - self.first_ms) // max(self.expected - 1, 1)


def _clock(ms_of_day: int) -> str:
    return f"{ms_of_day // 3_600_000:02d}:{ms_of_day // 60_000 % 60:02d}"


def _longest_hole(stamps: np.ndarray, window: BarWindow) -> tuple[int, int, int]:
    """(first missing stamp, last missing stamp, bars missing) of the longest hole."""
    edges = np.concatenate(
        ([window.first_ms - window.step_ms], np.sort(stamps), [window.last_ms + window.step_ms])
    )
    gaps = np.diff(edges)
    widest = int(np.argmax(gaps))
    missing = int(gaps[widest] // window.step_ms) - 1
    start = int(edges[widest]) + window.step_ms
    return start, start + (missing - 1) * window.step_ms, missing


def minute_completeness(
    table: pa.Table, dataset: str, group: np.ndarray, window: BarWindow, flags: np.ndarray
) -> FamilyResult:
    """Flag ``incomplete_bars`` on the rows of contracts with fewer bars than ``window`` holds.

    ``group`` numbers each row's contract (−1: a row without a full key, not counted).
    """
    result = FamilyResult(Family.COVERAGE)
    known = group >= 0
    if not known.any():
        return result
    counts = np.bincount(group[known])
    present = counts > 0
    short = present & (counts < window.expected)
    result.checked = int(present.sum())
    result.violations = int(short.sum())
    if not result.violations:
        return result
    missing = np.where(short, window.expected - counts, 0)
    result.counts = {
        "incomplete_contracts": result.violations,
        "missing_bars": int(missing.sum()),
    }
    flagged = known & short[np.where(known, group, 0)]
    flags[flagged] |= np.uint32(Flag.INCOMPLETE_BARS)
    result.examples = _worst_holes(table, dataset, group, flagged, missing, window)
    return result


def _worst_holes(
    table: pa.Table,
    dataset: str,
    group: np.ndarray,
    flagged: np.ndarray,
    missing: np.ndarray,
    window: BarWindow,
) -> list[Example]:
    """The contracts missing most bars, each stamped with the first bar of its longest hole."""
    rows = np.flatnonzero(flagged)
    contracts, first = np.unique(group[rows], return_index=True)
    worst = np.argsort(-missing[contracts], kind="stable")[:EXAMPLES_PER_FAMILY]
    stamps = local_ms(table.column("timestamp")) % MS_PER_DAY
    examples = []
    for contract, row in zip(contracts[worst], rows[first[worst]], strict=True):
        start, end, hole = _longest_hole(stamps[group == contract], window)
        at = table.column("timestamp")[int(row)].as_py()
        examples.append(
            Example(
                dataset=dataset,
                root=table.column("root")[int(row)].as_py(),
                expiration=table.column("expiration")[int(row)].as_py(),
                strike=float(table.column("strike")[int(row)].as_py()),
                right=table.column("right")[int(row)].as_py(),
                timestamp=at.replace(
                    hour=start // 3_600_000, minute=start // 60_000 % 60, second=0, microsecond=0
                ),
                detail=(
                    f"{missing[contract]} of {window.expected} bars missing; longest hole "
                    f"{_clock(start)}-{_clock(end)} ({hole} bars)"
                ),
                severity=float(missing[contract]),
            )
        )
    return examples


def listing_coverage(
    expected: Iterable[tuple[str, dt.date]] | None,
    listed: Iterable[tuple[str, dt.date]],
    with_data: Iterable[tuple[str, dt.date]],
    *,
    sure_until: dt.date | None = None,
) -> FamilyResult:
    """Expirations the rules promise (``expected``; None: rules not applied) against those the
    vendor listed, and listed ones against those with intraday rows.

    ``sure_until``: the listing is every expiration ever (list/expirations, below the Value
    tier), so one after this date may not have been listed yet that day and a no-data answer
    for it is no hole: only listed expirations up to it are checked.
    """
    result = FamilyResult(Family.COVERAGE)
    listed, with_data = set(listed), set(with_data)
    if sure_until is not None:
        listed = {pair for pair in listed if pair[1] <= sure_until}
    promised = set(expected) if expected is not None else set()
    unlisted = sorted(promised - listed)
    empty = sorted(listed - with_data)
    result.checked = len(promised | listed)
    result.violations = len(unlisted) + len(empty)
    result.counts = {"expected_unlisted": len(unlisted), "listed_without_data": len(empty)}
    examples = [
        _expiration_example(pair, "promised by the listing rules, not listed by the vendor")
        for pair in unlisted
    ] + [_expiration_example(pair, "listed, but no rows (a no-data answer)") for pair in empty]
    result.examples = examples[:EXAMPLES_PER_FAMILY]
    return result


def _expiration_example(pair: tuple[str, dt.date], detail: str) -> Example:
    root, expiration = pair
    return Example("listing", root, expiration, None, None, None, detail, severity=1.0)


def contract_drift(
    contracts: int, trailing: Sequence[int], limits: Thresholds, session: dt.date
) -> FamilyResult:
    """The session's contract count against the median of the previous sessions' (``trailing``,
    newest last); not checked with fewer than ``limits.drift_min_sessions`` of them."""
    result = FamilyResult(Family.COVERAGE)
    window = [n for n in trailing[-limits.drift_sessions :] if n > 0]
    if len(window) < limits.drift_min_sessions:
        return result
    median = float(np.median(window))
    ratio = contracts / median
    result.checked = 1
    result.measures = {"contract_ratio": ratio}
    if limits.drift_ratio <= ratio <= 1 / limits.drift_ratio:
        return result
    result.violations = 1
    result.counts = {"contract_drift": 1}
    detail = (
        f"{contracts:,} contracts against a median of {median:,.0f} over the previous "
        f"{len(window)} sessions ({ratio:.2f}×)"
    )
    result.examples = [Example("*", "*", session, None, None, None, detail, severity=1.0)]
    return result
