"""Memory does not grow with an answer: a 1.5M-row (~200 MB) body streams in bounded RSS."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from spx_dagster.core.thetadata.client import ThetaClient

ROWS = 1_500_000


class _RssProbe:
    """A sink that drops batches and samples this process's RSS as rows arrive."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.rows = 0
        self.samples: list[tuple[int, int]] = []

    def write(self, batch) -> None:
        self.rows += batch.num_rows
        self.samples.append((self.rows, self.process.memory_info().rss))

    def commit(self) -> None:
        return

    def discard(self) -> None:
        return


@pytest.mark.slow
def test_rss_plateaus_while_a_huge_answer_streams(tmp_path):
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("big_answer_server.py")), str(ROWS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        probe = _RssProbe()
        with ThetaClient(base_url=f"http://127.0.0.1:{port}", timeout_s=30) as client:
            result = client.fetch_to(
                "greeks",
                root="SPXW",
                session_date=dt.date(2024, 11, 4),
                expiration=dt.date(2024, 11, 8),
                sink=probe,
            )
    finally:
        server.kill()
        server.wait()
    assert result.rows == ROWS == probe.rows
    assert result.bytes > 150_000_000
    # After the first fifth the RSS must be flat: growth proportional to the body would add
    # ~160 MB over the remaining four fifths.
    fifth = next(rss for rows, rss in probe.samples if rows >= ROWS // 5)
    peak_after = max(rss for _, rss in probe.samples)
    assert peak_after - fifth < 60_000_000, (fifth, peak_after)
