"""One estimate of the time and space N sessions take, for ``gaps``, ``fill-gaps`` and ``backfill``.

Per session: the median seconds and bytes of every complete session published so far (whatever
range is asked about: a range of gaps has no history of its own), or defaults before the first
one. Sessions run ``parallel_sessions`` at a time: the runs one backfill may start at once
(``core/run_limits.BACKFILL_RUN_LIMIT``), capped by the fetch steps the terminal pool admits.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from spx_dagster.core.run_limits import BACKFILL_RUN_LIMIT

DEFAULT_SECONDS_PER_SESSION = 180.0
DEFAULT_BYTES_PER_SESSION = 400_000_000


class PublishedSizes(Protocol):
    """What the estimate reads of a published session (a manifest summary or a history fact)."""

    status: str
    bytes: int
    seconds: float | None


@dataclass(frozen=True)
class GapEstimate:
    sessions: int
    seconds: float
    bytes: int
    seconds_per_session: float
    bytes_per_session: int
    basis: str  # "history" (median of published sessions) or "default"
    parallel_sessions: int = 1

    def to_dict(self) -> dict:
        """The ``estimate`` document of ``--json`` (seconds rounded to tenths)."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 1)
        data["seconds_per_session"] = round(self.seconds_per_session, 1)
        return data


def parallel_sessions(pool_limit: int) -> int:
    """Sessions processed at once: a backfill's run limit, capped by the terminal pool."""
    return max(1, min(BACKFILL_RUN_LIMIT, int(pool_limit)))


def estimate(
    gap_count: int, published: Iterable[PublishedSizes], *, concurrency: int = 1
) -> GapEstimate:
    """Time and size to process ``gap_count`` sessions, ``concurrency`` at a time."""
    facts = [f for f in published if f.status == "complete"]
    secs = [f.seconds for f in facts if f.seconds]
    sizes = [f.bytes for f in facts if f.bytes]
    per_s = statistics.median(secs) if secs else DEFAULT_SECONDS_PER_SESSION
    per_b = int(statistics.median(sizes)) if sizes else DEFAULT_BYTES_PER_SESSION
    basis = "history" if secs and sizes else "default"
    lanes = max(1, concurrency)
    return GapEstimate(
        sessions=gap_count,
        seconds=per_s * gap_count / lanes,
        bytes=per_b * gap_count,
        seconds_per_session=per_s,
        bytes_per_session=per_b,
        basis=basis,
        parallel_sessions=lanes,
    )


def estimate_sessions(output_dir: Path, count: int, *, pool_limit: int) -> GapEstimate:
    """The estimate every command prints: from all sessions published under ``output_dir``."""
    from spx_dagster.core.storage import published_sessions

    return estimate(
        count,
        published_sessions(Path(output_dir)).values(),
        concurrency=parallel_sessions(pool_limit),
    )
