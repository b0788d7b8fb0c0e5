"""Benchmark 3: the same requests done the common way, against our pipeline.

The common way, as found in most ThetaData scripts: one request at a time with ``requests``,
``format=json``, the whole body decoded into row dicts, ``pandas.DataFrame(rows)``, timestamps
and dates parsed with ``pd.to_datetime``, then ``DataFrame.to_parquet`` (pandas' defaults). It
runs in a child process (``fetch_naive``) on a subset of the session (the nearest expirations:
the same requests for both); our pipeline (fetch → validate → publish, concurrency 4) runs on
that subset in another child. Reported: both wall times, records/min, peak RSS and our speed-up.

No target in issue #7: the speed-up is reported, ``met`` is null.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    SESSION,
    per_minute,
    pipeline_env,
    progress,
    run_child,
    simulator,
    temp_home,
)
from bench.pipeline_run import plan_requests

NAME = "naive_baseline"
DATASETS = ("greeks",)


@dataclass(frozen=True)
class Size:
    chain: str
    max_dte: int


FULL = Size("full", 4)  # 5 requests, 1,882 contracts, 0.74 M rows
QUICK = Size("small", 0)  # 1 request, 204 contracts


def fetch_naive(base_url: str, session: str, requests: list, out_dir: str) -> dict:
    """requests → JSON → row dicts → pandas → to_parquet, one request at a time."""
    import pandas as pd
    import pyarrow as pa
    import requests as http

    from spx_dagster.core.datasets import SCHEMAS
    from spx_dagster.core.thetadata.transport import HistoryRequest
    from spx_dagster.core.thetadata.v3 import history_params
    from spx_dagster.core.thetadata.vendor import API_PREFIX, ENDPOINTS, EXCHANGE_TIMEZONE

    day = dt.date.fromisoformat(session)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = wire = 0
    started = time.monotonic()
    for dataset, root, expiration in requests:
        request = HistoryRequest(
            dataset, root, day, dt.date.fromisoformat(expiration) if expiration else None
        )
        # The v3 terminal documents format=json beside its default CSV.
        params = {**history_params(request, end_time=None), "format": "json"}
        response = http.get(
            base_url + API_PREFIX["v3"] + ENDPOINTS[dataset].path, params=params, timeout=120
        )
        response.raise_for_status()
        wire += len(response.content)
        records = response.json()["response"]
        frame = pd.DataFrame(records)
        for field in SCHEMAS[dataset]:
            if pa.types.is_timestamp(field.type) and field.name in frame:
                frame[field.name] = pd.to_datetime(frame[field.name]).dt.tz_localize(
                    EXCHANGE_TIMEZONE
                )
            elif pa.types.is_date(field.type) and field.name in frame:
                frame[field.name] = pd.to_datetime(frame[field.name]).dt.date
        frame.to_parquet(out / f"{dataset}_{root}_{expiration}.parquet")
        rows += len(frame)
    return {
        "seconds": time.monotonic() - started,
        "rows": rows,
        "wire_bytes": wire,
        "parquet_bytes": sum(p.stat().st_size for p in out.glob("*.parquet")),
    }


def run(quick: bool, shared: dict) -> tuple[dict, None, None]:
    size = QUICK if quick else FULL
    with simulator(chain=size.chain) as sim, temp_home(NAME) as home:
        requests = plan_requests(sim.base_url, SESSION, max_dte=size.max_dte, datasets=DATASETS)
        progress(f"{NAME}: the common way over {len(requests)} requests ({size})")
        naive = run_child(
            "naive_baseline:fetch_naive",
            base_url=sim.base_url,
            session=SESSION.isoformat(),
            requests=requests,
            out_dir=str(home / "naive"),
        )
        env = pipeline_env(
            home,
            sim.base_url,
            processing__datasets=",".join(DATASETS),
            processing__max_dte=size.max_dte,
        )
        progress(f"{NAME}: our pipeline over the same requests")
        ours = run_child("pipeline_run:run_stages", env=env, session=SESSION.isoformat())
    n, o = naive.value, ours.value
    return (
        {
            "session": SESSION.isoformat(),
            "chain": size.chain,
            "max_dte": size.max_dte,
            "requests": len(requests),
            "rows": o["rows"],
            "same_rows": n["rows"] == o["rows"],
            "naive": {
                "seconds": round(n["seconds"], 2),
                "records_per_min": round(per_minute(n["rows"], n["seconds"])),
                "json_mb": round(n["wire_bytes"] / 1e6, 1),
                "parquet_mb": round(n["parquet_bytes"] / 1e6, 1),
                "cpu_s": round(naive.cpu_s, 1),
                "peak_rss_mb": round(naive.peak_rss_mb),
            },
            "ours": {
                "seconds": round(o["total_s"], 2),
                "records_per_min": round(per_minute(o["rows"], o["total_s"])),
                "csv_mb": round(o["wire_bytes"] / 1e6, 1),
                "parquet_mb": round(o["parquet_bytes"] / 1e6, 1),
                "cpu_s": round(ours.cpu_s, 1),
                "peak_rss_mb": round(ours.peak_rss_mb),
            },
            "speedup": round(n["seconds"] / o["total_s"], 2),
        },
        None,
        None,
    )
