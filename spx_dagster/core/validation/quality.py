"""The quality score of a session (0..1) and the parts it is made of.

Parts (each 0..1; None when it does not apply, e.g. no intraday dataset, no listed expirations):

- ``validity``: valid rows / all rows. Rows the client could not parse (malformed lines, see
  ``malformed.py``) count among all rows and none of the valid ones.
- ``expiration_coverage``: listed expirations with rows / listed expirations (mean over the
  datasets given a listing).
- ``interval_completeness``: intraday contracts with exactly the expected rows / contracts.
- ``crossed_quote_rate``: rows with bid > ask / rows with both quoted (flagged, rows kept).
- ``zero_quote_rate``: rows with bid = ask = 0 / rows with both quoted. Normal in far wings, so
  it weighs little.
- one part per research family (``core.quality.Family``): 1 − rows it flagged / rows it
  checked (calendar arbitrage: grid comparisons; coverage: contracts, expirations and the drift
  test; reconciliation: EOD rows, intraday contracts without EOD and open-interest rows).

Score = sum(w * g) / sum(w) over the parts that apply, with g = the part for the first three and
the families, g = 1 - rate for the two rates, and w = ``QUALITY_WEIGHTS``. A session whose only
issue is a typical share of zero quotes in the wings (say 30 %) still scores 0.985.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from spx_dagster.core.quality import Family, FamilyResult
from spx_dagster.core.quality.thresholds import alert_threshold
from spx_dagster.core.storage.manifest import QualitySummary

QUALITY_WEIGHTS: dict[str, float] = {
    "validity": 0.30,
    "expiration_coverage": 0.15,
    "interval_completeness": 0.13,
    "crossed_quote_rate": 0.06,
    "zero_quote_rate": 0.05,
    # The research families (``core.quality``): their score is 1 − flagged / checked rows.
    "quote_sanity": 0.06,
    "greeks_bounds": 0.05,
    "strike_arbitrage": 0.05,
    "parity": 0.03,
    "staleness": 0.03,
    "calendar_arbitrage": 0.03,
    "coverage": 0.03,
    "reconciliation": 0.03,
}
_RATE_PARTS = frozenset({"crossed_quote_rate", "zero_quote_rate"})


@dataclass
class ChunkStats:
    """Counts from validating one staged response (or the sum of several)."""

    dataset: str
    rows: int = 0
    valid_rows: int = 0
    rejected_rows: int = 0  # malformed lines included
    malformed_rows: int = 0  # lines the client could not parse (all of them rejected)
    reasons: Counter[str] = field(default_factory=Counter)  # rejected rows per failed check
    quote_rows: int = 0  # valid rows with both bid and ask present
    crossed_rows: int = 0  # bid > ask (kept)
    zero_quote_rows: int = 0  # bid = ask = 0 (kept)
    contracts: int = 0
    complete_contracts: int | None = None  # intraday only: contracts with the expected rows
    expirations: set[tuple[str, dt.date]] = field(default_factory=set)  # with valid rows
    outside_plan_rows: int = 0  # rows of expirations the plan does not hold, dropped
    families: dict[str, FamilyResult] = field(default_factory=dict)  # quality families, by name

    def add(self, other: ChunkStats) -> None:
        self.rows += other.rows
        self.valid_rows += other.valid_rows
        self.rejected_rows += other.rejected_rows
        self.malformed_rows += other.malformed_rows
        self.reasons.update(other.reasons)
        self.quote_rows += other.quote_rows
        self.crossed_rows += other.crossed_rows
        self.zero_quote_rows += other.zero_quote_rows
        self.contracts += other.contracts
        if other.complete_contracts is not None:
            self.complete_contracts = (self.complete_contracts or 0) + other.complete_contracts
        self.expirations |= other.expirations
        self.outside_plan_rows += other.outside_plan_rows
        for name, result in other.families.items():
            mine = self.families.setdefault(name, FamilyResult(result.family))
            mine.add(result)


@dataclass
class QualityReport:
    score: float | None
    parts: dict[str, float | None]
    counts: dict[str, int]
    reasons: dict[str, int]
    by_dataset: dict[str, dict[str, float | None]]
    families: dict[str, FamilyResult] = field(default_factory=dict)

    def to_summary(self) -> QualitySummary:
        """The manifest's form of this report."""
        return QualitySummary(
            score=self.score,
            parts=dict(self.parts),
            counts=dict(self.counts),
            reasons=dict(self.reasons),
            weights=dict(QUALITY_WEIGHTS),
            by_dataset={k: dict(v) for k, v in self.by_dataset.items()},
            families={
                name: result.to_dict(alert_threshold(name))
                for name, result in sorted(self.families.items())
            },
        )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def quality_score(parts: dict[str, float | None]) -> float | None:
    """The documented weighted formula over the parts that apply (see the module docstring)."""
    total = weight = 0.0
    for name, w in QUALITY_WEIGHTS.items():
        value = parts.get(name)
        if value is None:
            continue
        total += w * ((1.0 - value) if name in _RATE_PARTS else value)
        weight += w
    return round(total / weight, 6) if weight else None


class QualityAccumulator:
    """Adds up chunk statistics of a session and turns them into a ``QualityReport``.

    ``listed`` is the (root, expiration) pairs the session's plan covers; coverage is measured
    against it for every dataset added (or ``expect(pairs, dataset=...)`` per dataset, when a
    dataset is requested for fewer expirations).
    """

    def __init__(self, listed: Iterable[tuple[str, dt.date]] = ()) -> None:
        self._listed_all = set(listed)
        self._listed: dict[str, set[tuple[str, dt.date]]] = {}
        self._stats: dict[str, ChunkStats] = {}
        self._session = ChunkStats("*session")  # families judged on the whole session

    def add_session_family(self, result: FamilyResult) -> None:
        """A family result that belongs to no dataset (e.g. coverage of the listing)."""
        self._session.add(ChunkStats("*session", families={result.family.value: result}))

    def expect(self, pairs: Iterable[tuple[str, dt.date]], *, dataset: str | None = None) -> None:
        if dataset is None:
            self._listed_all |= set(pairs)
        else:
            self._listed.setdefault(dataset, set()).update(pairs)

    def add(self, stats: ChunkStats) -> None:
        self._stats.setdefault(stats.dataset, ChunkStats(stats.dataset)).add(stats)

    def stats(self, dataset: str) -> ChunkStats:
        return self._stats.get(dataset, ChunkStats(dataset))

    def _coverage(self, dataset: str, stats: ChunkStats) -> float | None:
        listed = self._listed.get(dataset, self._listed_all)
        return _ratio(len(stats.expirations & listed), len(listed))

    def _parts(self, stats: ChunkStats, coverage: float | None) -> dict[str, float | None]:
        return {
            "validity": _ratio(stats.valid_rows, stats.rows),
            "expiration_coverage": coverage,
            "interval_completeness": (
                _ratio(stats.complete_contracts, stats.contracts)
                if stats.complete_contracts is not None
                else None
            ),
            "crossed_quote_rate": _ratio(stats.crossed_rows, stats.quote_rows),
            "zero_quote_rate": _ratio(stats.zero_quote_rows, stats.quote_rows),
            **{
                family.value: (
                    stats.families[family.value].score if family.value in stats.families else None
                )
                for family in Family
            },
        }

    def report(self) -> QualityReport:
        total = ChunkStats("*")
        by_dataset: dict[str, dict[str, float | None]] = {}
        coverages = []
        intraday = ChunkStats("*intraday")
        for name, stats in sorted(self._stats.items()):
            coverage = self._coverage(name, stats)
            if coverage is not None:
                coverages.append(coverage)
            parts = self._parts(stats, coverage)
            parts["score"] = quality_score(parts)
            by_dataset[name] = parts
            total.add(stats)
            if stats.complete_contracts is not None:
                intraday.add(stats)
        total.add(self._session)
        parts = self._parts(total, sum(coverages) / len(coverages) if coverages else None)
        parts["interval_completeness"] = (
            _ratio(intraday.complete_contracts or 0, intraday.contracts)
            if intraday.complete_contracts is not None
            else None
        )
        counts = {
            "rows": total.rows,
            "valid_rows": total.valid_rows,
            "rejected_rows": total.rejected_rows,
            "malformed_rows": total.malformed_rows,
            "quote_rows": total.quote_rows,
            "crossed_rows": total.crossed_rows,
            "zero_quote_rows": total.zero_quote_rows,
            "contracts": total.contracts,
            "intraday_contracts": intraday.contracts,
            "complete_contracts": intraday.complete_contracts or 0,
            "expirations_listed": len(self._listed_all),
            "expirations_covered": len(total.expirations & self._listed_all),
            "outside_plan_rows": total.outside_plan_rows,
        }
        return QualityReport(
            score=quality_score(parts),
            parts=parts,
            counts=counts,
            reasons=dict(total.reasons.most_common()),
            by_dataset=by_dataset,
            families=total.families,
        )
