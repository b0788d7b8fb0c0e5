"""Vendor holes and their revisits: which published sessions miss data, and when to look again.

Vendors back-fill late: a session published with no-data answers for expirations it listed, or
with a ``coverage`` family score below its alert threshold, is *incomplete*. The gap sensor
re-runs it (a full re-fetch that re-publishes atomically) once at least ``REVISIT_AFTER_DAYS[0]``
(1) and once at least ``REVISIT_AFTER_DAYS[1]`` (7) days after its first publish, and never
again; each revisit is recorded in the manifest (``Manifest.revisits``). A revisit that finds
less than the publish it would replace keeps that publish (``core.storage.republish``).

Plain data only (no Dagster, no disk): ``session_holes`` is the one definition of a hole, shared
by the manifest summaries, ``spx-data gaps``, the gap sensor and the publish decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

REVISIT_AFTER_DAYS: tuple[int, ...] = (1, 7)
COVERAGE_FAMILY = "coverage"
KEPT_NEW = "new"  # the revisit's publish replaced the previous one
KEPT_PREVIOUS = "previous"  # the revisit found less: the previous publish stays


def session_holes(quality: Any) -> int:
    """How many holes a session's ``QualitySummary`` shows; 0 for a complete session.

    In manifests with the ``coverage`` family: its listed expirations without intraday rows
    (no-data answers), or all its violations when its score is below its threshold. In older
    ones: listed (root, expiration) pairs without valid rows
    (``expirations_listed - expirations_covered``).
    """
    families: Mapping[str, Any] = getattr(quality, "families", None) or {}
    coverage = families.get(COVERAGE_FAMILY)
    if coverage is None:  # written before the coverage family
        counts: Mapping[str, Any] = getattr(quality, "counts", None) or {}
        listed = int(counts.get("expirations_listed") or 0)
        covered = int(counts.get("expirations_covered") or 0)
        return max(listed - covered, 0)
    # The family's own count: below the Value tier the listing is every expiration ever, and
    # a far one not yet listed that day answers no data without being a hole.
    holes = int((coverage.get("counts") or {}).get("listed_without_data") or 0)
    score, threshold = coverage.get("score"), coverage.get("threshold")
    if score is not None and threshold is not None and float(score) < float(threshold):
        holes = max(holes, int(coverage.get("violations") or 0), 1)
    return holes


@dataclass(frozen=True)
class RevisitRun:
    """What a revisit run tells the publish step: which revisit it is, and its run."""

    after_days: int
    run_id: str


@dataclass(frozen=True)
class Revisit:
    """One revisit, as the manifest records it (``Manifest.revisits``)."""

    at: str  # ISO time (UTC) of the revisit's publish decision
    after_days: int
    run_id: str
    holes_before: int
    holes_after: int
    kept: str  # KEPT_NEW or KEPT_PREVIOUS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def revisit_days(revisits: Iterable[Mapping[str, Any]]) -> tuple[int, ...]:
    """The ``after_days`` of the revisits a manifest records, in order."""
    out = []
    for revisit in revisits:
        try:
            out.append(int(revisit["after_days"]))
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited entry: ignored rather than refusing the manifest
    return tuple(out)


def remaining_revisits(done: Iterable[int]) -> tuple[int, ...]:
    """The revisits still to come: those after the latest done (a skipped one is not made up)."""
    done = set(done)
    latest = max(done, default=0)
    return tuple(d for d in REVISIT_AFTER_DAYS if d > latest and d not in done)


def next_revisit_at(first_published: dt.datetime, done: Iterable[int]) -> dt.datetime | None:
    """When the next revisit is due; None once none is left."""
    remaining = remaining_revisits(done)
    return first_published + dt.timedelta(days=remaining[0]) if remaining else None


def due_revisit(first_published: dt.datetime, done: Iterable[int], now: dt.datetime) -> int | None:
    """The revisit to run at ``now`` (its ``after_days``), or None when none is due.

    When several are due (the sensor was stopped for a week), only the latest runs: the earlier
    one would fetch the same data.
    """
    due = [d for d in remaining_revisits(done) if now >= first_published + dt.timedelta(days=d)]
    return max(due) if due else None


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO time from a manifest (naive ones are UTC), None when absent or unreadable."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
