"""Fixtures shared by the core tests."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session")
def greeks(tmp_path_factory, tiny_simulator) -> pa.Table:
    """The published greeks of the tiny session 2024-11-04 (SPXW 2024-11-08 and SPX 2024-11-15,
    9 strikes each, 391 minutes), through the real stages against the shared simulator; read
    only (Arrow tables are immutable), so one publish serves every quality test."""
    from spx_dagster_tests.core.test_quarantine_malformed import run_stages

    home = tmp_path_factory.mktemp("published-greeks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPX_DATA_HOME", str(home))
        mp.setenv("SPX_DATA_THETADATA__BASE_URL", tiny_simulator.base_url)
        mp.setenv("SPX_DATA_STORAGE__MIN_FREE_GB", "0")
        mp.setenv("SPX_DATA_PROCESSING__START_DATE", "2024-01-02")
        tiny_simulator.clear_faults()
        tiny_simulator.clear_anomalies()
        _, _, published = run_stages()
    return pq.read_table(home / "data" / published.manifest.datasets["greeks"].files[0].path)
