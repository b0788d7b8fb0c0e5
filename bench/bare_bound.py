"""The bare bound: the same requests with nothing but HTTP read, CSV parse and parquet write.

What a pipeline cannot beat on this machine with this simulator: each answer's body is streamed
from ``requests`` straight into ``pyarrow.csv.open_csv`` (types inferred by Arrow, no conversion,
no checks, no retries, no staging sidecars, no validation, no publish pass) and every batch goes
to a zstd parquet file, on as many threads as the pipeline uses. ``fetch_bare`` runs in a child
process (``harness.run_child``) so its CPU and peak RSS are its own.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

OK = 200


class _CountingBody:
    """The raw HTTP body as a file for Arrow, counting the bytes read from the wire."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.bytes = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(None if size is None or size < 0 else size)
        self.bytes += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


def fetch_bare(base_url: str, session: str, requests: list, concurrency: int, out_dir: str) -> dict:
    """Fetch ``requests`` ((dataset, root, expiration) triples) into parquet in ``out_dir``."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import requests as http

    from spx_dagster.core.thetadata.sinks import PARQUET_COMPRESSION
    from spx_dagster.core.thetadata.transport import HistoryRequest
    from spx_dagster.core.thetadata.v3 import history_params
    from spx_dagster.core.thetadata.vendor import API_PREFIX, ENDPOINTS

    day = dt.date.fromisoformat(session)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    client = http.Session()
    client.mount("http://", http.adapters.HTTPAdapter(pool_maxsize=max(concurrency, 10)))

    def one(item: list) -> dict:
        dataset, root, expiration = item
        request = HistoryRequest(
            dataset, root, day, dt.date.fromisoformat(expiration) if expiration else None
        )
        url = base_url + API_PREFIX["v3"] + ENDPOINTS[dataset].path
        started = time.monotonic()
        rows = 0
        with client.get(
            url, params=history_params(request, end_time=None), stream=True, timeout=(3, 60)
        ) as response:
            if response.status_code != OK:
                return {"status": response.status_code, "rows": 0, "bytes": 0, "seconds": 0.0}
            body = _CountingBody(response.raw)
            reader = pacsv.open_csv(body)
            path = out / f"{dataset}_{root}_{expiration}.parquet"
            with pq.ParquetWriter(path, reader.schema, compression=PARQUET_COMPRESSION) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        return {
            "status": OK,
            "rows": rows,
            "bytes": body.bytes,
            "seconds": time.monotonic() - started,
        }

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(one, requests))
    seconds = time.monotonic() - started
    client.close()
    return {
        "seconds": seconds,
        "requests": len(answers),
        "not_ok": sum(1 for a in answers if a["status"] != OK),
        "rows": sum(a["rows"] for a in answers),
        "wire_bytes": sum(a["bytes"] for a in answers),
        "parquet_bytes": sum(p.stat().st_size for p in out.glob("*.parquet")),
    }
