"""The quality families: one enum, and what a family's evaluation of a session reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

# Worst rows kept per family and session.
EXAMPLES_PER_FAMILY = 5


class Family(StrEnum):
    """A family of checks; its value is the name in the manifest, the CLI and the UI."""

    QUOTE_SANITY = "quote_sanity"
    GREEKS_BOUNDS = "greeks_bounds"
    STRIKE_ARBITRAGE = "strike_arbitrage"
    PARITY = "parity"
    STALENESS = "staleness"
    CALENDAR_ARBITRAGE = "calendar_arbitrage"
    COVERAGE = "coverage"
    RECONCILIATION = "reconciliation"


@dataclass(frozen=True)
class Example:
    """One of the worst rows of a family: where it is and what is wrong with it."""

    dataset: str
    root: str
    expiration: dt.date
    strike: float | None  # None: the example is a whole expiration or session
    right: str | None
    timestamp: dt.datetime | None
    detail: str
    severity: float  # how far past the tolerance, in the family's unit; examples sort by it

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "root": self.root,
            "expiration": self.expiration.isoformat(),
            "strike": self.strike,
            "right": self.right,
            "timestamp": None if self.timestamp is None else self.timestamp.isoformat(),
            "detail": self.detail,
        }


@dataclass
class FamilyResult:
    """A family's outcome on one table: rows checked, rows flagged, the score and examples.

    ``score`` is 1 − violations / checked (None when nothing could be checked); ``measures``
    holds the family's own figures (e.g. ``minimum_repair`` of strike arbitrage), per flag
    ``counts``.
    """

    family: Family
    checked: int = 0
    violations: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        return None if self.checked == 0 else 1.0 - self.violations / self.checked

    def to_dict(self, threshold: float | None = None) -> dict:
        """The manifest's and ``spx-data quality --json``'s form of the result."""
        score = self.score
        return {
            "score": None if score is None else round(score, 6),
            "checked": self.checked,
            "violations": self.violations,
            "threshold": threshold,
            "counts": dict(self.counts),
            "measures": {k: round(v, 6) for k, v in self.measures.items()},
            "examples": [e.to_dict() for e in self.examples],
        }

    def examples_markdown(self) -> str:
        """The worst examples as a markdown table (the UI shows it beside the check)."""
        if not self.examples:
            return "no row flagged"
        lines = [
            "| dataset | root | expiration | strike | right | time | detail |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in self.examples:
            at = "" if e.timestamp is None else f"{e.timestamp:%H:%M}"
            strike = "" if e.strike is None else f"{e.strike:g}"
            lines.append(
                f"| {e.dataset} | {e.root} | {e.expiration} | {strike} | {e.right or ''} | {at} "
                f"| {e.detail} |"
            )
        return "\n".join(lines)

    def add(self, other: FamilyResult) -> None:
        """Fold the result of another part of the same session into this one."""
        self.checked += other.checked
        self.violations += other.violations
        for name, count in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        for name, value in other.measures.items():
            self.measures[name] = self.measures.get(name, 0.0) + value
        merged = sorted([*self.examples, *other.examples], key=lambda e: -e.severity)
        self.examples = merged[:EXAMPLES_PER_FAMILY]
