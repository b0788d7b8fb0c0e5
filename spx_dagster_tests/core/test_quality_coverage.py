"""The coverage and reconciliation families: the era's listing rules, contract drift, and clean
sessions of the simulator over HTTP raising neither.

The listing rules (``core/quality/listing_rules.py``) and the simulator's listing
(``simulator/listing.py``) are written apart from each other; a clean ``small``-chain session of
each era must show every expiration the rules promise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from spx_dagster.core.config import load_settings
from spx_dagster.core.quality import Family, Thresholds
from spx_dagster.core.quality.coverage import contract_drift, listing_coverage
from spx_dagster.core.quality.listing_rules import expected_expirations
from spx_dagster.core.session_stages import (
    PipelineSettings,
    fetch_session,
    publish_session,
    validate_session,
)
from spx_dagster.core.storage import load_manifest
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster_tests.core.test_quality_planted import publish_with_anomalies

BOTH = ("SPX", "SPXW")


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        # 2015: Friday weeklies only; the Saturday-dated SPX monthly of the OCC era.
        ("2014-06-16", {("SPXW", "2014-06-20"), ("SPX", "2014-06-21")}),
        # After the 2016 launches: Mondays, Wednesdays and Fridays.
        (
            "2016-09-12",
            {("SPXW", x) for x in ("2016-09-12", "2016-09-14", "2016-09-16", "2016-09-19")}
            | {("SPX", "2016-09-16")},
        ),
        # 2019-04-19 was Good Friday: the weekly and the monthly move to Thursday.
        (
            "2019-04-15",
            {("SPXW", x) for x in ("2019-04-15", "2019-04-17", "2019-04-18", "2019-04-22")}
            | {("SPX", "2019-04-18")},
        ),
        # Since May 2022 every weekday (0DTE included); 2024-11-28 (Thanksgiving) has none.
        (
            "2024-11-25",
            {("SPXW", x) for x in ("2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29")}
            | {("SPXW", "2024-12-02")},
        ),
    ],
)
def test_the_listing_rules_of_each_era(session, expected):
    got = expected_expirations(d(session), BOTH, 7)
    assert got == {(root, d(day)) for root, day in expected}


def test_the_tuesday_and_thursday_series_start_with_their_launch():
    before = expected_expirations(d("2022-03-07"), ("SPXW",), 7)
    after = expected_expirations(d("2022-05-11"), ("SPXW",), 7)
    assert {e.weekday() for _, e in before} == {0, 2, 4}
    assert {e.weekday() for _, e in after} == {0, 1, 2, 3, 4}


def test_listing_coverage_counts_unlisted_and_empty_expirations():
    expected = {("SPXW", d("2024-11-04")), ("SPXW", d("2024-11-05"))}
    listed = {("SPXW", d("2024-11-05")), ("SPXW", d("2024-11-08")), ("SPXW", d("2024-12-20"))}
    with_data = {("SPXW", d("2024-11-05"))}
    result = listing_coverage(expected, listed, with_data)
    assert result.counts == {"expected_unlisted": 1, "listed_without_data": 2}
    assert (result.checked, result.violations) == (4, 3)
    # list/expirations lists every expiration ever: a far one without data is no hole.
    sure = listing_coverage(expected, listed, with_data, sure_until=d("2024-11-11"))
    assert sure.counts == {"expected_unlisted": 1, "listed_without_data": 1}
    assert sure.examples[0].detail.startswith("promised by the listing rules")


def test_contract_drift_against_the_trailing_median():
    limits = Thresholds()
    day = d("2024-11-04")
    assert contract_drift(1000, [1000] * 4, limits, day).checked == 0  # too few sessions
    steady = contract_drift(900, [1000] * 20, limits, day)
    assert (steady.checked, steady.violations) == (1, 0)
    shrunk = contract_drift(400, [1000] * 19 + [5], limits, day)
    assert (shrunk.checked, shrunk.violations) == (1, 1)
    assert "400 contracts against a median of 1,000" in shrunk.examples[0].detail
    assert contract_drift(2500, [1000] * 20, limits, day).violations == 1


@pytest.mark.parametrize("session", ["2016-09-12", "2024-11-04"])
def test_a_clean_small_chain_session_passes_coverage_and_reconciliation(tmp_path, session):
    """Over HTTP, through the real stages: the simulator lists what the rules promise, every
    contract has all its bars, and EOD agrees with the intraday bars."""
    _, manifest, _ = publish_with_anomalies(
        tmp_path,
        "small",
        [],
        SPX_DATA_PROCESSING__MAX_DTE="7",
        session=d(session),
        SPX_DATA_PROCESSING__START_DATE="2016-01-04",
    )
    families = manifest.quality.families
    coverage, reconciliation = families["coverage"], families["reconciliation"]
    assert coverage["checked"] > 100 and coverage["violations"] == 0, coverage
    assert coverage["counts"]["expected_unlisted"] == 0
    assert reconciliation["checked"] > 100 and reconciliation["violations"] == 0, reconciliation


def test_a_shrunken_chain_fails_the_drift_test(pipeline_home):
    """Five sessions published with every expiration, then one cut to the first day (the tiny
    chain lists nothing expiring on a Monday): its contract count is far below the trailing
    median, and the coverage family says so."""
    base = PipelineSettings.from_settings(load_settings(), source_kind="simulator")
    days = [d(x) for x in ("2024-10-28", "2024-10-29", "2024-10-30", "2024-10-31", "2024-11-01")]
    for day in [*days, d("2024-11-04")]:
        cfg = base if day in days else replace(base, max_dte=0)
        with ThetaClient.from_settings(load_settings()) as client:
            fetch_session(client, cfg, day)
        validate_session(cfg, day)
        publish_session(cfg, day)
    coverage = load_manifest(pipeline_home.output_dir, d("2024-11-04")).quality.families[
        Family.COVERAGE.value
    ]
    assert coverage["counts"].get("contract_drift") == 1, coverage
    assert "against a median of" in coverage["examples"][0]["detail"]
    steady = load_manifest(pipeline_home.output_dir, days[-1]).quality.families["coverage"]
    assert "contract_drift" not in steady["counts"]
