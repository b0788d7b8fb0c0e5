"""The quality vector of published sessions, its trend and its alerts (``spx-data quality``).

Read from the manifests only (``quality.families``), so it answers without Dagster. Sessions of
schema 1 have no families: they are listed with their score and an empty vector.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from spx_dagster.core.quality.thresholds import alert_threshold
from spx_dagster.core.storage.committed import read_committed

# Sessions on each side of the trend comparison, by default.
TREND_WINDOW = 5


@dataclass(frozen=True)
class SessionQuality:
    session: dt.date
    score: float | None
    families: dict[str, dict]  # the manifest's quality.families


@dataclass(frozen=True)
class Trend:
    family: str
    recent: float  # mean score of the last ``window`` sessions
    before: float  # mean score of the ``window`` sessions before them
    window: int

    @property
    def change(self) -> float:
        return self.recent - self.before


@dataclass(frozen=True)
class Alert:
    session: dt.date
    family: str
    score: float
    threshold: float

    @property
    def message(self) -> str:
        return (
            f"{self.session} {self.family}: score {self.score:.4f} is below its alert level "
            f"{self.threshold:.4f}"
        )


@dataclass
class QualityHistory:
    sessions: list[SessionQuality]
    trends: list[Trend] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    def to_dict(self, family: str | None = None) -> dict:
        return {
            "sessions": [
                {
                    "session": s.session.isoformat(),
                    "score": s.score,
                    "families": {
                        name: vector
                        for name, vector in s.families.items()
                        if family is None or name == family
                    },
                }
                for s in self.sessions
            ],
            "trends": [
                {
                    "family": t.family,
                    "recent": round(t.recent, 6),
                    "before": round(t.before, 6),
                    "window": t.window,
                }
                for t in self.trends
                if family is None or t.family == family
            ],
            "alerts": [
                {
                    "session": a.session.isoformat(),
                    "family": a.family,
                    "score": a.score,
                    "threshold": a.threshold,
                    "message": a.message,
                }
                for a in self.alerts
                if family is None or a.family == family
            ],
        }


def quality_history(
    output_dir: Path,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    window: int = TREND_WINDOW,
) -> QualityHistory:
    """Every published session in [start, end] with its family vector, trends and alerts."""
    committed = read_committed(output_dir, start=start, end=end)
    sessions = [
        SessionQuality(day, m.quality.score, dict(m.quality.families))
        for day, m in sorted(committed.manifests.items())
    ]
    history = QualityHistory(sessions)
    names = sorted({name for s in sessions for name in s.families})
    for name in names:
        scores = [
            (s.session, s.families[name].get("score"))
            for s in sessions
            if name in s.families and s.families[name].get("score") is not None
        ]
        threshold = alert_threshold(name)
        history.alerts += [
            Alert(day, name, float(score), threshold) for day, score in scores if score < threshold
        ]
        values = [float(score) for _, score in scores]
        if len(values) >= 2 * window:
            history.trends.append(
                Trend(name, fmean(values[-window:]), fmean(values[-2 * window : -window]), window)
            )
    return history
