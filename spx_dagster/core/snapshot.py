"""The state of every session in a range, from facts however they were read: the one place the
CLI, fill-gaps and the gap sensor combine them (``defs.session_state.session_snapshot`` reads
the facts through Dagster; ``gaps`` and ``list`` read them with ``ops.sqlite_facts`` when the
instance allows, without importing Dagster).

It combines, with set arithmetic and no per-partition query:

- the expected sessions (XNYS calendar, from ``processing.start_date`` to the latest closed one),
- what is published (manifests, ``core.storage.published_sessions`` through the manifests'
  summary index; an unreadable manifest makes its session corrupt),
- every run of a session (one query of the run storage),
- sessions whose latest ``checksums_match`` result failed (in a run, or from ``spx-data verify``),
  and sessions a listed file of which is gone or has another size than its manifest says (stat),
- sessions a running backfill has still to run (in progress, not failed),

into one ``core.history.SessionRecord`` per session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spx_dagster.core import calendar
from spx_dagster.core.history import PublishedFact, RunFact, SessionRecord, session_records
from spx_dagster.core.storage.manifest import ManifestSummary, published_sessions

CORRUPT_MANIFEST = "corrupt"  # ManifestSummary.status of a manifest that cannot be read


class InstanceFacts(Protocol):
    """What a snapshot reads from the Dagster instance."""

    def run_facts(self) -> list[RunFact]: ...

    def corrupt_sessions(self) -> set[dt.date]: ...

    def pending_backfill_sessions(self) -> dict[dt.date, str]: ...


@dataclass
class SessionSnapshot:
    """Everything known about the sessions in [start, end], read once."""

    start: dt.date
    end: dt.date
    expected: list[dt.date]
    published: dict[dt.date, ManifestSummary]
    runs: list[RunFact]
    corrupt: set[dt.date]
    records: dict[dt.date, SessionRecord] = field(default_factory=dict)
    # Every run of every session, in the range or not (the estimates' history), read once.
    all_runs: list[RunFact] = field(default_factory=list)

    @property
    def published_facts(self) -> dict[dt.date, PublishedFact]:
        return published_facts(self.published)

    @property
    def volatility(self) -> dict[dt.date, float]:
        """``extra.underlying_range`` of the manifests that record it (the day's index range)."""
        return {
            day: s.underlying_range
            for day, s in self.published.items()
            if s.underlying_range is not None
        }


def published_facts(summaries: dict[dt.date, ManifestSummary]) -> dict[dt.date, PublishedFact]:
    """``core.history`` facts of manifest summaries (unreadable ones keep status ``corrupt``)."""
    return {
        day: PublishedFact(
            session=day,
            status=s.status,
            rows=s.rows,
            bytes=s.bytes,
            quality=s.quality,
            seconds=s.seconds,
            created_at=s.created_at,
            underlying_range=s.underlying_range,
            holes=s.holes,
            first_published_at=s.first_published_at,
            revisits=s.revisits,
        )
        for day, s in summaries.items()
    }


def default_range(
    settings: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[dt.date, dt.date]:
    """[start, end] with ``processing.start_date`` and the latest closed session as defaults."""
    first = start or settings.processing.start_date
    last = end or calendar.latest_closed_session(now)
    return first, last


def build_snapshot(
    facts: InstanceFacts,
    settings: Any,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> SessionSnapshot:
    """Read the calendar, the manifests and ``facts`` once for the sessions in [start, end].

    A session outside the expected ones (published before ``processing.start_date`` was moved,
    say) is still listed when it has a manifest or a run in the range.
    """
    first, last = default_range(settings, start, end, now=now)
    expected = calendar.sessions_between(first, last)
    output_dir = Path(settings.storage.output_dir)
    published = published_sessions(output_dir, start=first, end=last)
    all_runs = facts.run_facts()
    runs = [r for r in all_runs if first <= r.session <= last]
    corrupt = {d for d in facts.corrupt_sessions() if first <= d <= last}
    corrupt |= {d for d, s in published.items() if s.status == CORRUPT_MANIFEST}
    corrupt |= {d for d, s in published.items() if s.size_problems(output_dir)}
    pending = {d for d in facts.pending_backfill_sessions() if first <= d <= last}
    days = sorted(set(expected) | set(published) | {r.session for r in runs} | corrupt)
    snapshot = SessionSnapshot(first, last, expected, published, runs, corrupt, all_runs=all_runs)
    snapshot.records = session_records(
        days, published_facts(published), runs, corrupt=corrupt, pending=pending
    )
    return snapshot
