"""Dagster-layer reads for ``spx-data perf`` and ``spx-data errors``.

Performance figures come from the materialization metadata the session assets record (rows,
bytes, seconds, peak RSS, retries), one sample per publish, so re-runs count as what they were:
separate pieces of work. Sessions published outside Dagster fall back to their manifests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from spx_dagster.core.perf_report import PerfSample
from spx_dagster.core.storage import ManifestSummary, published_sessions
from spx_dagster.defs.constants import PARQUET, RAW, VALIDATED
from spx_dagster.defs.partitions import session_from_key

PAGE = 1000
# Failed runs without an error tag whose failure event is read for a message (bounded: one
# event-log read per run).
MAX_MESSAGE_LOOKUPS = 100


def _partition_day(key: str | None) -> dt.date | None:
    if not key:
        return None
    try:
        return session_from_key(key)
    except ValueError:
        return None


def _materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey
) -> Iterable[dg.EventLogRecord]:
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key), limit=PAGE, cursor=cursor, ascending=True
        )
        yield from result.records
        if not result.has_more:
            return
        cursor = result.cursor


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    if materialization is None:
        return {}
    return {name: value.value for name, value in materialization.metadata.items()}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def perf_samples(
    instance: dg.DagsterInstance,
    output_dir: Path,
    start: dt.date,
    end: dt.date,
) -> list[PerfSample]:
    """One sample per publish of a session in [start, end] (no-data sessions left out);
    manifests fill in sessions Dagster has no materialization of."""
    peaks: dict[str, float] = {}
    fetch_retries: dict[str, int] = {}
    for asset_key in (RAW, VALIDATED):
        for record in _materializations(instance, asset_key):
            day = _partition_day(record.partition_key)
            if day is None or not start <= day <= end:
                continue
            meta = _metadata(record)
            rss = _number(meta.get("peak_rss_mb"))
            if rss is not None:
                peaks[record.run_id] = max(peaks.get(record.run_id, 0.0), rss)
            retries = _number(meta.get("retries"))
            if asset_key == RAW and retries is not None:
                fetch_retries[record.run_id] = int(retries)
    samples: list[PerfSample] = []
    seen: set[dt.date] = set()
    for record in _materializations(instance, PARQUET):
        day = _partition_day(record.partition_key)
        if day is None or not start <= day <= end:
            continue
        meta = _metadata(record)
        seconds = _number(meta.get("seconds"))
        # A no-data session has no throughput to speak of: it would only drag the figures down.
        if seconds is None or meta.get("status") == "no_data":
            continue
        rss = [v for v in (_number(meta.get("peak_rss_mb")), peaks.get(record.run_id)) if v]
        retries = _number(meta.get("retries"))
        samples.append(
            PerfSample(
                session=day,
                when=record.timestamp,
                rows=int(_number(meta.get("rows")) or 0),
                bytes=int(_number(meta.get("bytes")) or 0),
                seconds=seconds,
                peak_rss_mb=max(rss) if rss else None,
                retries=int(retries) if retries is not None else fetch_retries.get(record.run_id),
                run_id=record.run_id,
                source="dagster",
            )
        )
        seen.add(day)
    manifests = published_sessions(Path(output_dir), start=start, end=end)
    samples.extend(_manifest_samples(manifests, seen))
    return samples


def _manifest_samples(
    manifests: Mapping[dt.date, ManifestSummary], seen: set[dt.date]
) -> list[PerfSample]:
    out = []
    for day, summary in manifests.items():
        if day in seen or summary.status != "complete" or not summary.seconds:
            continue
        created = summary.created_at
        when = dt.datetime.fromisoformat(created).timestamp() if created else 0.0
        out.append(
            PerfSample(
                session=day,
                when=when,
                rows=summary.rows,
                bytes=summary.bytes,
                seconds=summary.seconds,
                source="manifest",
            )
        )
    return out


def failure_messages(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> dict[str, str]:
    """The first step or run failure message of each run (for runs that carry no error tag)."""
    from spx_dagster.defs.dagster_internals import DagsterEventType

    wanted = {DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    out: dict[str, str] = {}
    for run_id in list(run_ids)[:MAX_MESSAGE_LOOKUPS]:
        for entry in instance.all_logs(run_id, of_type=wanted):
            event = entry.dagster_event
            error = getattr(getattr(event, "event_specific_data", None), "error", None)
            message = (error.message.strip() if error else None) or (event and event.message)
            if message:
                out[run_id] = message
                break
    return out
