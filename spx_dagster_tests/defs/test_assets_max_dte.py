"""processing.max_dte means the same for every dataset (issue 11: on 43668ef, with max_dte 3,
greeks published 4 expirations while eod published 16, out to DTE 21, and the manifest listed 4).
Real assets, real instance, the simulator over HTTP, the published parquet read back."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from spx_dagster.core.storage import load_manifest
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster_tests.defs.test_assets_pipeline import run_session

SESSION = dt.date(2024, 11, 4)
MAX_DTE = 3
DATASETS = ("greeks", "eod", "open_interest", "quote", "greeks_eod")
# Requested with `expiration=*`: their answers carry every listed expiration.
WILDCARD_DATASETS = ("eod", "open_interest", "greeks_eod")


@pytest.fixture(scope="module")
def small_simulator():
    """The small chain: daily SPXW expirations, so a wildcard answer reaches past DTE 3."""
    from spx_dagster.simulator import SimulatorServer

    with SimulatorServer(port=0, profile="fast", chain="small", seed=0) as server:
        yield server


@pytest.fixture(scope="module")
def published(tmp_path_factory, small_simulator):
    """One session published with max_dte 3 (module scope: the tests read one run)."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("max_dte") / "spx"
    (home / "dagster").mkdir(parents=True)
    for key, value in {
        "SPX_DATA_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "SPX_DATA_THETADATA__BASE_URL": small_simulator.base_url,
        "SPX_DATA_STORAGE__MIN_FREE_GB": "0",
        "SPX_DATA_PROCESSING__START_DATE": "2024-01-02",
        "SPX_DATA_PROCESSING__MAX_DTE": str(MAX_DTE),
        "SPX_DATA_PROCESSING__DATASETS": ",".join(DATASETS),
    }.items():
        mp.setenv(key, value)
    with dg.instance_for_test() as instance:
        result = run_session(instance, key=SESSION.isoformat())
        assert result.success
    manifest = load_manifest(home / "data", SESSION)
    yield home / "data", manifest
    mp.undo()


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_holds_only_the_planned_expirations(published, dataset):
    output_dir, manifest = published
    planned = {(root, exp) for root, exps in manifest.expirations.items() for exp in exps}
    assert planned and all((exp - SESSION).days <= MAX_DTE for _, exp in planned)
    files = [output_dir / f.path for f in manifest.datasets[dataset].files]
    table = pa.concat_tables(pq.read_table(p, columns=["root", "expiration"]) for p in files)
    found = {
        (r, e)
        for r, e in zip(
            table["root"].to_pylist(),
            pc.cast(table["expiration"], "date32").to_pylist(),
            strict=True,
        )
    }
    assert found and found <= planned


def test_rows_outside_the_plan_are_counted_in_the_manifest(published):
    _, manifest = published
    assert manifest.quality.counts["outside_plan_rows"] > 0
    dropped = {name: entry.dropped_outside_plan for name, entry in manifest.datasets.items()}
    # greeks names each planned expiration; the end-of-day wildcard answers reach past DTE 3.
    assert dropped["greeks"] == 0
    assert dropped["eod"] > 0 and dropped["open_interest"] > 0
    assert sum(dropped.values()) == manifest.quality.counts["outside_plan_rows"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_dataset_counts_its_dropped_rows_in_the_manifest(published, dataset):
    output_dir, manifest = published
    dropped = manifest.datasets[dataset].dropped_outside_plan
    if dataset in WILDCARD_DATASETS:
        assert dropped > 0
    else:
        assert dropped == 0  # one request per planned expiration: nothing to drop
    on_disk = json.loads(OutputLayout.of(output_dir).manifest_path(SESSION).read_text())
    assert on_disk["datasets"][dataset]["dropped_outside_plan"] == dropped
