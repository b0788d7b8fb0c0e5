"""Error history and its patterns, from the runs of sessions (plain records, no Dagster).

``spx-data errors`` shows every failed run of a session in a date range and groups the failures
three ways, because each grouping answers a different question: by category (what kind of
problem, and what to do about it), by message signature (is it one bug or many), and by when
(does it cluster at a time of day or on a weekday, e.g. while the terminal restarts at night).
"""

from __future__ import annotations

import calendar as calendar_module
import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from spx_dagster.core.calendar import ET
from spx_dagster.core.failure_categories import FailureCategory
from spx_dagster.core.history import RunFact

NO_MESSAGE = "no error message was recorded on the run (open the run in the Dagster UI)"
# A pattern worth a sentence: at least this many failures and this share of all of them.
NOTABLE_MIN_COUNT = 3
NOTABLE_SHARE = 0.5
# A time bucket is a cluster when its share of failures is this many times its share of runs.
CLUSTER_RATIO = 1.5
SIGNATURE_CHARS = 240
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_NAMES = dict(zip(WEEKDAYS, calendar_module.day_name, strict=True))

_SIGNATURE_RULES = (
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"(?:/[\w.\-]+){2,}/?"), "<path>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:[+-]\d{2}:?\d{2}|Z)?)?"), "<date>"),
    (re.compile(r"\b[0-9a-f]{8,}(?:-[0-9a-f]{4,})*\b", re.IGNORECASE), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def message_signature(message: str | None) -> str:
    """``message`` with its variable parts (dates, numbers, ids, URLs, paths) replaced.

    Two failures with the same signature are the same problem on different sessions or requests.
    """
    text = (message or NO_MESSAGE).strip()
    for pattern, replacement in _SIGNATURE_RULES:
        text = pattern.sub(replacement, text)
    return text[:SIGNATURE_CHARS]


@dataclass(frozen=True)
class ErrorEntry:
    """One failed run of one session."""

    session: dt.date
    run_id: str
    when: dt.datetime | None  # when the run ended (or started), UTC
    category: str
    message: str
    attempt: int  # this run was the session's n-th run
    attempts: int  # runs of the session so far (in progress ones excluded)
    transient: bool
    resolved: bool  # a later run of the session succeeded

    def to_dict(self) -> dict:
        d = asdict(self)
        d["session"] = self.session.isoformat()
        d["when"] = self.when.isoformat() if self.when else None
        return d


@dataclass
class CategoryPattern:
    category: str
    count: int
    sessions: int
    unresolved_sessions: int
    transient: bool
    advice: str
    last_seen: dt.datetime | None
    example: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["last_seen"] = self.last_seen.isoformat() if self.last_seen else None
        return d


@dataclass
class SignaturePattern:
    signature: str
    count: int
    sessions: int
    categories: list[str]
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    example_session: dt.date

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("first_seen", "last_seen"):
            d[name] = d[name].isoformat() if d[name] else None
        d["example_session"] = self.example_session.isoformat()
        return d


@dataclass
class ErrorReport:
    start: dt.date | None
    end: dt.date | None
    runs: int  # finished runs of sessions in the range
    failures: int
    failed_sessions: int
    unresolved_sessions: list[dt.date]
    entries: list[ErrorEntry] = field(default_factory=list)  # newest first
    by_category: list[CategoryPattern] = field(default_factory=list)
    by_signature: list[SignaturePattern] = field(default_factory=list)
    by_weekday: dict[str, int] = field(default_factory=dict)  # when the run failed, ET
    by_hour: dict[str, int] = field(default_factory=dict)  # "HH:00" ET
    by_session_weekday: dict[str, int] = field(default_factory=dict)
    observations: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.runs if self.runs else None

    def to_dict(self) -> dict:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "runs": self.runs,
            "failures": self.failures,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "failed_sessions": self.failed_sessions,
            "unresolved_sessions": [d.isoformat() for d in self.unresolved_sessions],
            "by_category": [p.to_dict() for p in self.by_category],
            "by_signature": [p.to_dict() for p in self.by_signature],
            "by_weekday": self.by_weekday,
            "by_hour": self.by_hour,
            "by_session_weekday": self.by_session_weekday,
            "observations": self.observations,
            "errors": [e.to_dict() for e in self.entries],
        }


def _when(run: RunFact) -> dt.datetime | None:
    stamp = run.end_time or run.start_time
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC) if stamp else None


def _in_range(day: dt.date, start: dt.date | None, end: dt.date | None) -> bool:
    return (start is None or day >= start) and (end is None or day <= end)


def error_entries(
    runs: Iterable[RunFact], *, intact: Iterable[dt.date] = ()
) -> tuple[list[ErrorEntry], int]:
    """Every failed run as an entry (newest first), and the number of attempts.

    Runs that were not attempts (paused, canceled, refused before the session closed) are
    neither failures nor counted in the rate. A failure of a session that is published and
    intact (``intact``: a failed forced re-run, say) is resolved: the session is not failing.
    """
    intact_set = set(intact)
    by_session: dict[dt.date, list[RunFact]] = defaultdict(list)
    for run in runs:
        by_session[run.session].append(run)
    entries: list[ErrorEntry] = []
    finished = 0
    for day, day_runs in by_session.items():
        ordered = sorted(day_runs, key=lambda r: r.start_time or r.end_time or 0.0)
        done = [r for r in ordered if r.attempt]
        finished += len(done)
        for index, run in enumerate(done):
            if not run.failed:
                continue
            category = FailureCategory.parse(run.error_category)
            entries.append(
                ErrorEntry(
                    session=day,
                    run_id=run.run_id,
                    when=_when(run),
                    category=category,
                    message=run.error_message or NO_MESSAGE,
                    attempt=index + 1,
                    attempts=len(done),
                    transient=category.transient,
                    resolved=day in intact_set
                    or any(r.status == "SUCCESS" for r in done[index + 1 :]),
                )
            )
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    entries.sort(key=lambda e: (e.when or epoch, e.session), reverse=True)
    return entries, finished


def _categories(entries: list[ErrorEntry]) -> list[CategoryPattern]:
    grouped: dict[str, list[ErrorEntry]] = defaultdict(list)
    for entry in entries:
        grouped[entry.category].append(entry)
    patterns = []
    for name, items in grouped.items():
        category = FailureCategory.parse(name)
        sessions = {e.session for e in items}
        unresolved = {e.session for e in items if not e.resolved}
        patterns.append(
            CategoryPattern(
                category=category,
                count=len(items),
                sessions=len(sessions),
                unresolved_sessions=len(unresolved),
                transient=category.transient,
                advice=category.strategy,
                last_seen=max((e.when for e in items if e.when), default=None),
                example=items[0].message,  # entries are newest first
            )
        )
    patterns.sort(key=lambda p: (-p.count, p.category))
    return patterns


def _signatures(entries: list[ErrorEntry]) -> list[SignaturePattern]:
    grouped: dict[str, list[ErrorEntry]] = defaultdict(list)
    for entry in entries:
        grouped[message_signature(entry.message)].append(entry)
    patterns = []
    for signature, items in grouped.items():
        times = [e.when for e in items if e.when]
        patterns.append(
            SignaturePattern(
                signature=signature,
                count=len(items),
                sessions=len({e.session for e in items}),
                categories=sorted({e.category for e in items}),
                first_seen=min(times, default=None),
                last_seen=max(times, default=None),
                example_session=items[0].session,
            )
        )
    patterns.sort(key=lambda p: (-p.count, p.signature))
    return patterns


def _clusters(
    failures: dict[str, dict[str, int]], runs: dict[str, dict[str, int]], total: int
) -> list[str]:
    """Buckets (an hour, a weekday) holding most failures and more than their share of runs.

    Comparing with the runs matters: when every run starts at 18:30, every failure does too, and
    that says nothing.
    """
    notes = []
    finished = sum(runs["by_hour"].values())
    labels = {
        "by_hour": "between {} and the next hour (ET)",
        "by_weekday": "on a {} (when the run failed)",
        "by_session_weekday": "on {} sessions",
    }
    for name, label in labels.items():
        counts = failures[name]
        if not counts or not finished:
            continue
        bucket, count = max(counts.items(), key=lambda kv: kv[1])
        shown = WEEKDAY_NAMES.get(bucket, bucket)
        failure_share = count / total
        run_share = runs[name].get(bucket, 0) / finished
        if (
            count >= NOTABLE_MIN_COUNT
            and failure_share >= NOTABLE_SHARE
            and failure_share >= CLUSTER_RATIO * run_share
        ):
            notes.append(
                f"{count} of {total} failures happened {label.format(shown)}, where "
                f"{run_share:.0%} of runs are"
            )
    return notes


def _observations(
    report: ErrorReport, entries: list[ErrorEntry], runs: dict[str, dict[str, int]]
) -> list[str]:
    notes: list[str] = []
    mentioned: set[str] = set()
    total = len(entries)
    if not total:
        return notes
    top = report.by_category[0]
    if top.count >= NOTABLE_MIN_COUNT and top.count / total >= NOTABLE_SHARE:
        mentioned.add(top.category)
        notes.append(
            f"{top.count} of {total} failures are {top.category}: {top.advice}"
            + ("" if top.transient else " (it will not fix itself)")
        )
    failures = {
        "by_hour": report.by_hour,
        "by_weekday": report.by_weekday,
        "by_session_weekday": report.by_session_weekday,
    }
    notes.extend(_clusters(failures, runs, total))
    repeated = Counter(e.session for e in entries if not e.resolved)
    stubborn = sorted(day for day, n in repeated.items() if n >= NOTABLE_MIN_COUNT)
    if stubborn:
        shown = ", ".join(d.isoformat() for d in stubborn[:5])
        more = f" and {len(stubborn) - 5} more" if len(stubborn) > 5 else ""
        notes.append(
            f"{len(stubborn)} session(s) failed {NOTABLE_MIN_COUNT}+ times without a success: "
            f"{shown}{more}; look at their last error before retrying"
        )
    for pattern in report.by_category:
        if pattern.transient or not pattern.unresolved_sessions or pattern.category in mentioned:
            continue
        notes.append(
            f"{pattern.unresolved_sessions} session(s) failed with {pattern.category}, which a "
            f"retry alone will not fix: {pattern.advice}"
        )
    return notes


def _when_buckets(
    items: Iterable[tuple[dt.date, dt.datetime | None]],
) -> dict[str, dict[str, int]]:
    """Counts by weekday and hour of ``when`` (ET) and by weekday of the session."""
    weekday: Counter[str] = Counter()
    hour: Counter[str] = Counter()
    session_weekday: Counter[str] = Counter()
    for session, when in items:
        session_weekday[WEEKDAYS[session.weekday()]] += 1
        if when is not None:
            local = when.astimezone(ET)
            weekday[WEEKDAYS[local.weekday()]] += 1
            hour[f"{local.hour:02d}:00"] += 1
    return {
        "by_weekday": {d: weekday[d] for d in WEEKDAYS if weekday[d]},
        "by_hour": dict(sorted(hour.items())),
        "by_session_weekday": {d: session_weekday[d] for d in WEEKDAYS if session_weekday[d]},
    }


def error_report(
    runs: Iterable[RunFact],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    intact: Iterable[dt.date] = (),
) -> ErrorReport:
    """The failures among ``runs`` of sessions in [start, end], grouped into patterns;
    ``intact`` sessions (published, checksums not known bad) are not "still failing"."""
    selected = [r for r in runs if _in_range(r.session, start, end)]
    entries, finished = error_entries(selected, intact=intact)
    unresolved = sorted({e.session for e in entries if not e.resolved})
    report = ErrorReport(
        start=start,
        end=end,
        runs=finished,
        failures=len(entries),
        failed_sessions=len({e.session for e in entries}),
        unresolved_sessions=unresolved,
        entries=entries,
    )
    report.by_category = _categories(entries)
    report.by_signature = _signatures(entries)
    failed = _when_buckets((e.session, e.when) for e in entries)
    report.by_weekday = failed["by_weekday"]
    report.by_hour = failed["by_hour"]
    report.by_session_weekday = failed["by_session_weekday"]
    every_run = _when_buckets((r.session, _when(r)) for r in selected if r.attempt)
    report.observations = _observations(report, entries, every_run)
    return report
