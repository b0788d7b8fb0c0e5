"""Every anomaly the simulator plants is flagged in the published file (recall 1.0), and the
session's quality vector reaches the manifest and ``spx-data quality``.

A simulator of its own (tiny chain, seed 0) plants anomalies of the families the pipeline runs;
the real stages fetch it over HTTP, validate and publish; the test reads the published parquet.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.quality import Family
from spx_dagster.core.quality.flags import family_flags
from spx_dagster.simulator import SimulatorServer
from spx_dagster_tests.core.test_quarantine_malformed import SESSION, run_stages

FAMILIES = (
    Family.QUOTE_SANITY,
    Family.GREEKS_BOUNDS,
    Family.STRIKE_ARBITRAGE,
    Family.PARITY,
    Family.STALENESS,
    Family.COVERAGE,
    Family.RECONCILIATION,
)
# Where each family's planted anomaly shows: the dataset read, and the rows that must carry its
# flag (default: the record's contract over its minutes). Dropped minutes leave no rows of
# their own: the contract's other rows are flagged; an EOD record names no minute.
DATASET_OF = {Family.RECONCILIATION: "eod"}
PLANTED_PER_FAMILY = 2
# The tiny chain lists one expiration per root, all its strikes above the index: no at-the-money
# smile to compare across expirations. Calendar arbitrage is planted in the small chain.
CALENDAR_CHAIN, CALENDAR_MAX_DTE = "small", 15


def publish_with_anomalies(home, chain: str, specs: list[str], session=SESSION, **settings: str):
    """(output_dir, manifest, planted records) of ``session`` published from a simulator of its
    own that plants ``specs``."""
    with (
        SimulatorServer(port=0, profile="fast", chain=chain, seed=0, anomalies=specs) as server,
        pytest.MonkeyPatch.context() as mp,
    ):
        for key, value in {
            "SPX_DATA_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "SPX_DATA_THETADATA__BASE_URL": server.base_url,
            "SPX_DATA_STORAGE__MIN_FREE_GB": "0",
            "SPX_DATA_PROCESSING__START_DATE": "2024-01-02",
            **settings,
        }.items():
            mp.setenv(key, value)
        _, _, outcome = run_stages(session)
        return home, outcome.manifest, server.anomalies(session)["planted"]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    specs = [f"{family.value}:{PLANTED_PER_FAMILY}" for family in FAMILIES]
    return publish_with_anomalies(tmp_path_factory.mktemp("planted"), "tiny", specs)


@pytest.fixture(scope="module")
def published_calendar(tmp_path_factory):
    return publish_with_anomalies(
        tmp_path_factory.mktemp("calendar"),
        CALENDAR_CHAIN,
        [f"{Family.CALENDAR_ARBITRAGE.value}:{PLANTED_PER_FAMILY}"],
        SPX_DATA_PROCESSING__MAX_DTE=str(CALENDAR_MAX_DTE),
    )


def published_table(home, manifest, dataset="greeks"):
    return pq.read_table(home / "data" / manifest.datasets[dataset].files[0].path)


def minutes(table):
    # Seconds print with their milliseconds ("10:00:00.000"): compare to the second.
    return pc.utf8_slice_codeunits(
        pc.strftime(table["timestamp"], format="%Y-%m-%dT%H:%M:%S"), 0, 19
    )


def contract_mask(table, record):
    """The rows of the record's contract (of its expiration when it names none)."""
    mask = pc.and_(
        pc.equal(table["root"], record["root"]),
        pc.equal(pc.strftime(table["expiration"], "%Y-%m-%d"), record["expiration"]),
    )
    if record["strike"] is not None:
        mask = pc.and_(mask, pc.equal(table["strike"], float(record["strike"])))
        mask = pc.and_(mask, pc.equal(table["right"], record["right"]))
    return mask


def contract_rows(table, record) -> np.ndarray:
    return np.flatnonzero(contract_mask(table, record).to_numpy(zero_copy_only=False))


def rows_of(table, record) -> np.ndarray:
    """The published rows a planted record covers: its contract (every contract of its
    expiration when it names none) from its minute to its last one."""
    stamp = minutes(table)
    mask = contract_mask(table, record)
    end = record.get("end_timestamp") or record["timestamp"]
    mask = pc.and_(
        mask,
        pc.and_(pc.greater_equal(stamp, record["timestamp"]), pc.less_equal(stamp, end)),
    )
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def at_minute(table, record) -> np.ndarray:
    """Every published row at the record's minute (a calendar break flags the expiration
    after the one it was planted in when that one is the later)."""
    return np.flatnonzero(
        pc.equal(minutes(table), record["timestamp"]).to_numpy(zero_copy_only=False)
    )


@pytest.mark.parametrize("family", [*FAMILIES, Family.CALENDAR_ARBITRAGE], ids=lambda f: f.value)
def test_every_planted_anomaly_is_flagged_in_its_row(request, family):
    fixture = "published_calendar" if family == Family.CALENDAR_ARBITRAGE else "published"
    home, manifest, planted = request.getfixturevalue(fixture)
    dataset = DATASET_OF.get(family, "greeks")
    table = published_table(home, manifest, dataset)
    flags = table["flags"].to_numpy()
    bits = np.uint32(sum(int(f) for f in family_flags(family)))
    records = [r for r in planted if r["family"] == family.value and r["dataset"] == dataset]
    assert records, planted

    def caught(record) -> bool:
        if family == Family.CALENDAR_ARBITRAGE:
            rows = at_minute(table, record)
        elif family in (Family.COVERAGE, Family.RECONCILIATION):
            rows = contract_rows(table, record)
        else:
            rows = rows_of(table, record)
        assert len(rows), record
        return bool((flags[rows] & bits).any())

    missed = [r for r in records if not caught(r)]
    recall = 1 - len(missed) / len(records)
    print(f"\n{family.value}: {len(records)} planted, recall {recall:.2f}")
    assert missed == []
    vector = manifest.quality.families[family.value]
    assert vector["violations"] >= len(records) and vector["score"] < 1.0


def test_the_quality_command_shows_the_vector_of_the_manifest(published, monkeypatch):
    home, manifest, _ = published
    monkeypatch.setenv("SPX_DATA_HOME", str(home))
    monkeypatch.setenv("SPX_DATA_STORAGE__MIN_FREE_GB", "0")
    result = CliRunner().invoke(cli, ["quality", SESSION.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    [session] = document["sessions"]
    assert session["session"] == SESSION.isoformat()
    assert session["score"] == manifest.quality.score
    for family in FAMILIES:
        vector = session["families"][family.value]
        assert set(vector) >= {"score", "checked", "violations", "threshold", "examples"}
        example = vector["examples"][0]
        assert set(example) == {
            "dataset",
            "root",
            "expiration",
            "strike",
            "right",
            "timestamp",
            "detail",
        }
    # Alerts: every family below its threshold in this session is named.
    assert {a["family"] for a in document["alerts"]} == {
        name for name, v in session["families"].items() if v["score"] < v["threshold"]
    }
    text = CliRunner().invoke(cli, ["quality", SESSION.isoformat(), "--family", "greeks_bounds"])
    assert text.exit_code == 0 and "greeks_bounds: worst rows" in text.output
    missing = CliRunner().invoke(cli, ["quality", "2024-11-05"])
    assert missing.exit_code == 1 and "spx-data process 2024-11-05" in missing.output
    both = CliRunner().invoke(cli, ["quality", "2024-11-04", "--from", "2024-11-01"])
    assert both.exit_code == 2


def test_a_planted_hole_is_named_with_its_minutes_in_the_coverage_examples(published):
    """The worst examples of coverage name each dropped run of minutes exactly (planted detail:
    "no rows HH:MM-HH:MM (N minutes)"), stamped with the hole's first minute."""
    _, manifest, planted = published
    examples = manifest.quality.families[Family.COVERAGE.value]["examples"]
    holes = [r for r in planted if r["family"] == "coverage" and r["dataset"] == "greeks"]
    assert holes
    for record in holes:
        span = record["detail"].split()[2]  # "10:05-10:24"
        (example,) = [
            e
            for e in examples
            if (e["root"], e["expiration"], e["strike"], e["right"])
            == (record["root"], record["expiration"], float(record["strike"]), record["right"])
        ]
        assert f"longest hole {span} " in example["detail"], example
        assert example["timestamp"][11:16] == span[:5]
