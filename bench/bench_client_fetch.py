"""Fetch one session's full 1m greeks chain from the simulator into parquet, and time it.

Usage: .venv/bin/python bench/bench_client_fetch.py [--chain full] [--concurrency 4]

Starts the built-in simulator (profile "fast"), lists the session's contracts, fetches greeks for
every root × expiration through ThetaClient.fetch_to_parquet on a thread pool sized to the
concurrency, and prints JSON lines: one per phase and a summary with rows, requests, seconds,
MB/s (wire bytes) and rows/min, plus peak RSS to show memory does not grow with the answer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from spx_dagster.core.thetadata.client import ThetaClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", default="full", choices=["full", "small", "tiny"])
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--session", default="2024-11-04")
    args = parser.parse_args()

    from spx_dagster.simulator import SimulatorServer

    session = dt.date.fromisoformat(args.session)
    process = psutil.Process()
    peak_rss = process.memory_info().rss
    with (
        SimulatorServer(port=0, profile=args.profile, chain=args.chain, seed=0) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        client = ThetaClient(base_url=sim.base_url, concurrency=args.concurrency)
        started = time.monotonic()
        contracts = client.list_contracts(session, ["SPX", "SPXW"])
        pairs = sorted(
            set(
                zip(
                    contracts.column("root").to_pylist(),
                    contracts.column("expiration").to_pylist(),
                    strict=True,
                )
            )
        )
        pairs = [(root, exp) for root, exp in pairs if exp >= session]
        print(
            json.dumps(
                {
                    "phase": "list",
                    "contracts": contracts.num_rows,
                    "requests": len(pairs),
                    "seconds": round(time.monotonic() - started, 3),
                }
            )
        )

        def fetch(pair):
            root, exp = pair
            return client.fetch_to_parquet(
                "greeks",
                root=root,
                session_date=session,
                expiration=exp,
                interval="1m",
                path=Path(tmp) / f"{root}_{exp}.parquet",
            )

        started = time.monotonic()
        results = []
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for result in pool.map(fetch, pairs):
                results.append(result)
                peak_rss = max(peak_rss, process.memory_info().rss)
        seconds = time.monotonic() - started
        rows = sum(r.rows for r in results)
        wire = sum(r.bytes for r in results)
        files = sum(p.stat().st_size for p in Path(tmp).glob("*.parquet"))
        print(
            json.dumps(
                {
                    "phase": "greeks",
                    "chain": args.chain,
                    "concurrency": args.concurrency,
                    "rows": rows,
                    "requests": client.stats.requests,
                    "no_data": sum(r.no_data for r in results),
                    "retries": client.stats.retries_by_cause,
                    "seconds": round(seconds, 2),
                    "wire_mb": round(wire / 1e6, 1),
                    "parquet_mb": round(files / 1e6, 1),
                    "mb_per_s": round(wire / 1e6 / seconds, 1),
                    "rows_per_min": int(rows / seconds * 60),
                    "peak_rss_mb": round(peak_rss / 1e6),
                }
            )
        )


if __name__ == "__main__":
    main()
