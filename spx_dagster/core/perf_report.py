"""Processing performance history: throughput, duration and memory per session, trends, alerts.

``spx-data perf`` feeds this module one ``PerfSample`` per processed session (from the
materialization metadata Dagster keeps, or from a manifest when a session was published outside
Dagster) and gets back summaries, a comparison of the latest sessions with the ones before them,
and alerts that say what changed and what to look at. Samples are ordered by when they were
processed, not by session date: a trend is about the machine and the terminal, not the market.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

# Default comparison window: the last 10 processed sessions against the 10 before them.
TREND_WINDOW = 10
# Fewer samples than this on either side of the comparison and no trend is drawn.
MIN_TREND_SAMPLES = 2
# Alerts need a few more: two sessions against two is a trend to show, not to alarm about.
MIN_ALERT_SAMPLES = 3
THROUGHPUT_DROP_ALERT = 0.30  # records/min or MB/min down more than 30 %
DURATION_RISE_ALERT = 0.50  # seconds per session up more than 50 %
RSS_RISE_ALERT = 0.30
RETRIES_RISE_ALERT = 0.50  # mean retries per session up more than 50 % ...
RETRIES_MIN_MEAN = 1.0  # ... and at least one retry per session on average
MEMORY_SHARE_ALERT = 0.80  # peak RSS above 80 % of the machine's memory


@dataclass(frozen=True)
class PerfSample:
    """The figures of one processed session."""

    session: dt.date
    when: float  # when processing finished (epoch seconds)
    rows: int
    bytes: int
    seconds: float
    peak_rss_mb: float | None = None
    retries: int | None = None
    run_id: str | None = None
    source: str = "dagster"  # "dagster" (materialization metadata) or "manifest"

    @property
    def records_per_min(self) -> float | None:
        return self.rows * 60.0 / self.seconds if self.seconds > 0 else None

    @property
    def mb_per_min(self) -> float | None:
        return self.bytes / 1e6 * 60.0 / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["session"] = self.session.isoformat()
        d["when"] = dt.datetime.fromtimestamp(self.when, tz=dt.UTC).isoformat()
        d["records_per_min"] = _round(self.records_per_min)
        d["mb_per_min"] = _round(self.mb_per_min, 3)
        return d


# metric name -> (sample attribute, True when higher is better, unit)
METRICS: dict[str, tuple[str, bool, str]] = {
    "records_per_min": ("records_per_min", True, "records/min"),
    "mb_per_min": ("mb_per_min", True, "MB/min"),
    "seconds": ("seconds", False, "s/session"),
    "peak_rss_mb": ("peak_rss_mb", False, "MB"),
    "retries": ("retries", False, "retries/session"),
}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _values(samples: Iterable[PerfSample], metric: str) -> list[float]:
    attribute = METRICS[metric][0]
    out = []
    for sample in samples:
        value = getattr(sample, attribute)
        if value is not None:
            out.append(float(value))
    return out


@dataclass
class MetricSummary:
    metric: str
    unit: str
    samples: int
    median: float | None
    mean: float | None
    minimum: float | None
    maximum: float | None
    latest: float | None

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("median", "mean", "minimum", "maximum", "latest"):
            d[name] = _round(d[name], 3)
        return d


@dataclass
class Trend:
    """The mean of the latest ``window`` samples against the ``window`` before them."""

    metric: str
    unit: str
    window: int
    recent: float
    previous: float
    change: float | None  # relative change, +0.25 = 25 % higher; None when previous is 0
    better: bool | None  # None when unchanged

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recent"] = _round(self.recent, 3)
        d["previous"] = _round(self.previous, 3)
        d["change"] = _round(self.change, 4)
        return d


@dataclass(frozen=True)
class Alert:
    level: str  # "warning" or "critical"
    metric: str
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PerfReport:
    samples: list[PerfSample]  # oldest processed first
    summaries: dict[str, MetricSummary] = field(default_factory=dict)
    trends: dict[str, Trend] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    window: int = TREND_WINDOW
    notes: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(s.rows for s in self.samples)

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.samples)

    def to_dict(self) -> dict:
        return {
            "sessions": len(self.samples),
            "total_rows": self.total_rows,
            "total_bytes": self.total_bytes,
            "window": self.window,
            "summary": {k: v.to_dict() for k, v in self.summaries.items()},
            "trends": {k: v.to_dict() for k, v in self.trends.items()},
            "alerts": [a.to_dict() for a in self.alerts],
            "notes": self.notes,
            "history": [s.to_dict() for s in self.samples],
        }


def summarize(samples: list[PerfSample], metric: str) -> MetricSummary:
    values = _values(samples, metric)
    latest = _values(samples[-1:], metric)
    return MetricSummary(
        metric=metric,
        unit=METRICS[metric][2],
        samples=len(values),
        median=statistics.median(values) if values else None,
        mean=statistics.fmean(values) if values else None,
        minimum=min(values, default=None),
        maximum=max(values, default=None),
        latest=latest[0] if latest else None,
    )


def trend(samples: list[PerfSample], metric: str, window: int) -> Trend | None:
    """Compare the latest samples having ``metric`` with the ones before them.

    With fewer than ``2 * window`` samples the history is split in two halves instead.
    """
    values = _values(samples, metric)
    size = min(window, len(values) // 2)
    if size < MIN_TREND_SAMPLES:
        return None
    recent = statistics.fmean(values[-size:])
    previous = statistics.fmean(values[-2 * size : -size])
    change = (recent - previous) / previous if previous else None
    higher_is_better = METRICS[metric][1]
    better = None if recent == previous else (recent > previous) == higher_is_better
    return Trend(metric, METRICS[metric][2], size, recent, previous, change, better)


def _alerts(
    trends: dict[str, Trend], samples: list[PerfSample], memory_total_bytes: int | None
) -> list[Alert]:
    alerts: list[Alert] = []
    trends = {name: t for name, t in trends.items() if t.window >= MIN_ALERT_SAMPLES}

    def pct(value: float) -> str:
        return f"{abs(value) * 100:.0f} %"

    for metric in ("records_per_min", "mb_per_min"):
        t = trends.get(metric)
        if t and t.change is not None and t.change < -THROUGHPUT_DROP_ALERT:
            alerts.append(
                Alert(
                    "warning",
                    metric,
                    f"throughput down {pct(t.change)} ({t.previous:,.0f} → {t.recent:,.0f} "
                    f"{t.unit} over the last {t.window} sessions): check `spx-data errors` for "
                    "throttling (rate_limited), the terminal's console, and thetadata.concurrency",
                )
            )
    t = trends.get("seconds")
    if t and t.change is not None and t.change > DURATION_RISE_ALERT:
        alerts.append(
            Alert(
                "warning",
                "seconds",
                f"sessions take {pct(t.change)} longer ({t.previous:,.1f} s → {t.recent:,.1f} s); "
                "bigger chains (more expirations) explain some of it: compare records/min",
            )
        )
    t = trends.get("retries")
    if (
        t
        and t.recent >= RETRIES_MIN_MEAN
        and (t.previous == 0 or (t.change is not None and t.change > RETRIES_RISE_ALERT))
    ):
        alerts.append(
            Alert(
                "warning",
                "retries",
                f"retries up: {t.previous:.1f} → {t.recent:.1f} per session over the last "
                f"{t.window} sessions; the terminal is throttling or dropping connections: "
                "lower thetadata.concurrency or check its console",
            )
        )
    t = trends.get("peak_rss_mb")
    if t and t.change is not None and t.change > RSS_RISE_ALERT:
        alerts.append(
            Alert(
                "warning",
                "peak_rss_mb",
                f"peak memory up {pct(t.change)} ({t.previous:,.0f} MB → {t.recent:,.0f} MB)",
            )
        )
    if memory_total_bytes:
        recent = _values(samples[-TREND_WINDOW:], "peak_rss_mb")
        limit_mb = memory_total_bytes / 1e6 * MEMORY_SHARE_ALERT
        if recent and max(recent) > limit_mb:
            alerts.append(
                Alert(
                    "critical",
                    "peak_rss_mb",
                    f"a recent session peaked at {max(recent):,.0f} MB, over "
                    f"{MEMORY_SHARE_ALERT:.0%} of this machine's {memory_total_bytes / 1e9:.1f} "
                    "GB: lower thetadata.concurrency or run fewer sessions at once",
                )
            )
    return alerts


def perf_report(
    samples: Iterable[PerfSample],
    *,
    window: int = TREND_WINDOW,
    memory_total_bytes: int | None = None,
) -> PerfReport:
    """Summaries, trends and alerts over ``samples`` (any order; sorted by processing time)."""
    ordered = sorted(samples, key=lambda s: (s.when, s.session))
    report = PerfReport(samples=ordered, window=window)
    for metric in METRICS:
        report.summaries[metric] = summarize(ordered, metric)
        t = trend(ordered, metric, window)
        if t is not None:
            report.trends[metric] = t
    report.alerts = _alerts(report.trends, ordered, memory_total_bytes)
    if len(ordered) < 2 * MIN_TREND_SAMPLES:
        report.notes.append(
            f"{len(ordered)} processed session(s): trends need at least {2 * MIN_TREND_SAMPLES}"
        )
    elif len(ordered) < 2 * window:
        report.notes.append(
            f"{len(ordered)} processed sessions: trends compare the newer half with the older "
            f"half (the full comparison uses the last {window} against the {window} before)"
        )
    if any(s.source == "manifest" for s in ordered):
        report.notes.append(
            "some sessions were published outside Dagster: their figures come from manifests "
            "(no memory or retry figures)"
        )
    return report
