"""Shared fixtures: an isolated spx-data home for every test session, and a pipeline home
pointed at the built-in simulator (real HTTP, tiny chain) for tests that run sessions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_spx_home(tmp_path_factory) -> Iterator[Path]:
    """No test may read or write the user's ~/.spx-data or a DAGSTER_HOME set outside."""
    home = tmp_path_factory.mktemp("spx_home")
    saved = {k: os.environ.get(k) for k in ("SPX_DATA_HOME", "DAGSTER_HOME")}
    os.environ["SPX_DATA_HOME"] = str(home)
    os.environ.pop("DAGSTER_HOME", None)
    for key in [k for k in os.environ if k.startswith("SPX_DATA_") and k != "SPX_DATA_HOME"]:
        os.environ.pop(key)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_simulator():
    """One simulator for the whole test session (fast profile, tiny chain, seed 0)."""
    from spx_dagster.simulator import SimulatorServer

    with SimulatorServer(port=0, profile="fast", chain="tiny", seed=0) as server:
        yield server


@dataclass(frozen=True)
class PipelineHome:
    home: Path
    dagster_home: Path
    output_dir: Path
    temp_dir: Path
    base_url: str


@pytest.fixture
def pipeline_home(tmp_path, monkeypatch, tiny_simulator) -> Iterator[PipelineHome]:
    """A fresh SPX_DATA_HOME + DAGSTER_HOME whose settings point at the tiny simulator.

    Settings come from ``SPX_DATA_<SECTION>__<KEY>`` variables, so subprocesses (run workers, the
    daemon, the CLI) see the same configuration.
    """
    tiny_simulator.clear_faults()
    tiny_simulator.set_connected(True)
    home = tmp_path / "spx"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    monkeypatch.setenv("SPX_DATA_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("SPX_DATA_THETADATA__BASE_URL", tiny_simulator.base_url)
    monkeypatch.setenv("SPX_DATA_THETADATA__BACKOFF_MAX_S", "0.05")
    monkeypatch.setenv("SPX_DATA_STORAGE__MIN_FREE_GB", "0")
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", "2024-01-02")
    # The tiny chain lists SPXW Fridays and SPX monthlies only, not every weekday the era's
    # rules promise (core/quality/listing_rules.py): trust its listing, as its users must.
    monkeypatch.setenv("SPX_DATA_QUALITY__LISTING_RULES", "false")
    yield PipelineHome(
        home=home,
        dagster_home=dagster_home,
        output_dir=home / "data",
        temp_dir=home / "tmp",
        base_url=tiny_simulator.base_url,
    )
    tiny_simulator.clear_faults()
    tiny_simulator.set_connected(True)
