"""Planted quality anomalies over real HTTP: each changes exactly its listed rows, as documented.

Two simulators with the same seed serve the same session, one clean and one planting every
family; both answers are read with the project's client. Every listed anomaly must show in the
served rows the way ``anomalies.FAMILIES`` documents, and every row that is not listed must be
byte-for-byte the clean one (no other row, no other column changed).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from spx_dagster.cli import exit_codes
from spx_dagster.cli.main import cli
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.simulator import SimulatorControl, SimulatorProcess, SimulatorServer
from spx_dagster.simulator.anomalies import FAMILIES

TODAY = dt.date(2025, 1, 31)
SESSION = dt.date(2024, 11, 4)  # tiny chain: SPXW 2024-11-08 and SPX 2024-11-15 trade
PER_FAMILY = 2
KEYS = ["root", "expiration", "strike", "right"]
INTRADAY = ("greeks", "quote")
EOD = ("eod", "greeks_eod")
# Columns each family may change (calendar reprices the whole row but its identity).
CHANGED = {
    "quote_sanity": {"bid", "ask"},
    "greeks_bounds": {"delta", "vega", "implied_vol"},
    "strike_arbitrage": {"bid", "ask"},
    "parity": {"bid", "ask"},
    "staleness": {"bid", "ask", "bid_size", "ask_size"},
    "reconciliation": {"close", "high", "bid", "ask"},
}


def fetch(sim: SimulatorServer, dataset: str) -> pd.DataFrame:
    """The session's whole answer for ``dataset`` (both roots, every expiration)."""
    client = ThetaClient(base_url=sim.base_url, max_attempts=1)
    listing = sim.terminal.listing
    parts = []
    with client:
        for root in listing.roots:
            for exp in listing.listed_on(root, SESSION):
                table = client.fetch_table(
                    dataset, root=root, session_date=SESSION, expiration=exp.date
                )
                parts.append(table.to_pandas())
    frame = pd.concat(parts, ignore_index=True)
    frame["expiration"] = frame["expiration"].astype(str)
    for column in ("timestamp", "underlying_timestamp", "created", "last_trade"):
        if column in frame and dataset in INTRADAY:
            frame[column] = frame[column].dt.tz_localize(None)
    return frame


@pytest.fixture(scope="module")
def served():
    """(clean frames, planted frames, records) per dataset."""
    with (
        SimulatorServer(port=0, chain="tiny", seed=0, today=TODAY) as clean,
        SimulatorServer(
            port=0,
            chain="tiny",
            seed=0,
            today=TODAY,
            anomalies=[f"{family}:{PER_FAMILY}" for family in FAMILIES],
        ) as dirty,
    ):
        datasets = (*INTRADAY, *EOD)
        records = SimulatorControl(dirty.base_url).anomalies(SESSION)["planted"]
        yield (
            {d: fetch(clean, d) for d in datasets},
            {d: fetch(dirty, d) for d in datasets},
            records,
        )


def rows_of(frame: pd.DataFrame, record: dict) -> pd.Series:
    """Which rows of ``frame`` a record names (strike None: every contract of the expiration)."""
    hit = (frame["root"] == record["root"]) & (frame["expiration"] == record["expiration"])
    if record["strike"] is not None:
        hit &= np.isclose(frame["strike"], record["strike"]) & (frame["right"] == record["right"])
    if record["timestamp"] is not None:
        first, last = pd.Timestamp(record["timestamp"]), pd.Timestamp(record["end_timestamp"])
        hit &= (frame["timestamp"] >= first) & (frame["timestamp"] <= last)
    return hit


def pair(served, record) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean rows, served rows) of a record, aligned."""
    clean, dirty, _ = served
    dataset = record["dataset"]
    c = clean[dataset][rows_of(clean[dataset], record)].reset_index(drop=True)
    d = dirty[dataset][rows_of(dirty[dataset], record)].reset_index(drop=True)
    return c, d


def family_records(served, family: str) -> list[dict]:
    records = [r for r in served[2] if r["family"] == family]
    assert records, f"nothing of {family} planted"
    return records


def mid(frame: pd.DataFrame) -> pd.Series:
    return (frame["bid"] + frame["ask"]) / 2


def minute_of(served, record, dataset="greeks") -> pd.DataFrame:
    """The served rows of the record's (root, expiration) at its minute."""
    frame = served[1][dataset]
    at = (
        (frame["root"] == record["root"])
        & (frame["expiration"] == record["expiration"])
        & (frame["timestamp"] == pd.Timestamp(record["timestamp"]))
    )
    return frame[at]


# --------------------------------------------------------------------------------------------
# The listing
# --------------------------------------------------------------------------------------------
def test_every_family_planted_in_both_datasets_it_touches(served):
    records = served[2]
    count = {
        f: len({(r["kind"], r["strike"], r["timestamp"]) for r in records if r["family"] == f})
        for f in FAMILIES
    }
    assert count == dict.fromkeys(FAMILIES, PER_FAMILY)
    datasets = {f: {r["dataset"] for r in records if r["family"] == f} for f in FAMILIES}
    assert datasets["greeks_bounds"] == {"greeks"}
    assert datasets["reconciliation"] == set(EOD)
    assert all(
        datasets[f] == set(INTRADAY)
        for f in CHANGED
        if f not in ("greeks_bounds", "reconciliation")
    )
    kinds = {(r["family"], r["kind"]) for r in records}
    assert {("quote_sanity", "crossed"), ("quote_sanity", "below_intrinsic")} <= kinds
    assert {("strike_arbitrage", "vertical"), ("strike_arbitrage", "butterfly")} <= kinds
    eod = [r for r in records if r["dataset"] in EOD]
    assert all(r["timestamp"] is None for r in eod)
    assert all(r["timestamp"] is not None and r["detail"] for r in records if r not in eod)


def test_the_plan_depends_on_seed_date_and_counts_only():
    asked = ["parity:2", "staleness", "coverage:1", "quote_sanity:3"]
    with (
        SimulatorServer(port=0, chain="tiny", seed=0, today=TODAY, anomalies=asked) as one,
        SimulatorServer(port=0, chain="tiny", seed=0, today=TODAY) as two,
        SimulatorServer(port=0, chain="tiny", seed=1, today=TODAY, anomalies=asked) as other,
    ):
        control = SimulatorControl(two.base_url)
        for spec in reversed(asked):  # another order, through the control API
            family, _, count = spec.partition(":")
            control.add_anomaly(family, int(count or 1))
        first = one.anomalies(SESSION)["planted"]
        assert first and control.anomalies(SESSION)["planted"] == first
        assert one.anomalies(SESSION)["planted"] == first  # asking again changes nothing
        assert other.anomalies(SESSION)["planted"] != first
        assert one.anomalies(dt.date(2024, 11, 5))["planted"] != first
        assert one.anomalies("2024-11-09")["planted"] == []  # a Saturday: nothing served
        assert control.clear_anomalies() == 7
        assert control.anomalies(SESSION) == {
            "anomalies": {},
            "date": SESSION.isoformat(),
            "planted": [],
        }


def test_wildcard_and_per_expiration_answers_show_the_same_planted_rows():
    with SimulatorServer(
        port=0, chain="tiny", seed=0, today=TODAY, anomalies=["coverage", "quote_sanity:2"]
    ) as sim:
        client = ThetaClient(base_url=sim.base_url, max_attempts=1)
        with client:
            whole = client.fetch_table("quote", root="SPXW", session_date=SESSION).to_pandas()
            one = client.fetch_table(
                "quote", root="SPXW", session_date=SESSION, expiration=dt.date(2024, 11, 8)
            ).to_pandas()
        planted = [r for r in sim.anomalies(SESSION)["planted"] if r["dataset"] == "quote"]
    assert any(r["expiration"] == "2024-11-08" for r in planted)
    part = whole[whole["expiration"] == dt.date(2024, 11, 8)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, one)


# --------------------------------------------------------------------------------------------
# Each family, as documented
# --------------------------------------------------------------------------------------------
def test_quote_sanity(served):
    for record in family_records(served, "quote_sanity"):
        clean, dirty = pair(served, record)
        assert len(clean) == len(dirty) == 1
        if record["kind"] == "crossed":
            assert dirty.bid[0] == clean.ask[0] and dirty.ask[0] == clean.bid[0]
            assert dirty.bid[0] > dirty.ask[0]
        else:
            spread = dirty.ask[0] - dirty.bid[0]
            assert spread == pytest.approx(clean.ask[0] - clean.bid[0])
            spot = served[1]["greeks"].loc[rows_of(served[1]["greeks"], record), "underlying_price"]
            spot = float(spot.iloc[0])
            k = record["strike"]
            intrinsic = spot - k if record["right"] == "C" else k - spot
            assert mid(dirty)[0] < intrinsic - 2 * spread - 1.0 < mid(clean)[0]


def test_greeks_bounds(served):
    for record in family_records(served, "greeks_bounds"):
        clean, dirty = pair(served, record)
        assert len(clean) == len(dirty) == 1
        if record["kind"] == "delta_sign":
            assert dirty.delta[0] == -clean.delta[0]
            assert dirty.delta[0] < 0 if record["right"] == "C" else dirty.delta[0] > 0
        elif record["kind"] == "negative_vega":
            assert dirty.vega[0] == -clean.vega[0] < 0
        else:
            assert dirty.implied_vol[0] > 5 and 0 < clean.implied_vol[0] <= 5


def test_strike_arbitrage(served):
    for record in family_records(served, "strike_arbitrage"):
        chain = minute_of(served, record, record["dataset"])
        calls = chain[chain["right"] == "C"].sort_values("strike").reset_index(drop=True)
        j = int(np.flatnonzero(np.isclose(calls["strike"], record["strike"]))[0])
        m, half = mid(calls), (calls["ask"] - calls["bid"]) / 2
        if record["kind"] == "vertical":
            assert m[j] > m[j - 1] + 2 * max(half[j], half[j - 1])
        else:
            k = calls["strike"]
            w = (k[j + 1] - k[j]) / (k[j + 1] - k[j - 1])
            tolerance = w * half[j - 1] + half[j] + (1 - w) * half[j + 1]
            assert m[j] > w * m[j - 1] + (1 - w) * m[j + 1] + tolerance
            assert m[j] < m[j - 1]  # a pure butterfly: the vertical holds
        clean, dirty = pair(served, record)
        assert mid(dirty)[0] > mid(clean)[0]


def test_calendar_arbitrage(served):
    for record in family_records(served, "calendar_arbitrage"):
        clean, dirty = pair(served, record)
        assert len(clean) == len(dirty) > 1  # the whole expiration at that minute
        if record["dataset"] == "greeks":
            assert (dirty["implied_vol"] < clean["implied_vol"]).all()
            prev_root, prev_exp = record["detail"].split(" of ")[1].split()
            at = served[1]["greeks"]
            prev = at[
                (at["root"] == prev_root)
                & (at["expiration"] == prev_exp)
                & (at["timestamp"] == pd.Timestamp(record["timestamp"]))
            ]
            years = (pd.Timestamp(record["expiration"]) - pd.Timestamp(SESSION)).days / 365
            prev_years = (pd.Timestamp(prev_exp) - pd.Timestamp(SESSION)).days / 365
            atm = dirty.iloc[(dirty["strike"] - dirty["underlying_price"]).abs().argmin()]
            prev_atm = prev.iloc[(prev["strike"] - prev["underlying_price"]).abs().argmin()]
            assert atm.implied_vol**2 * years < prev_atm.implied_vol**2 * prev_years
        else:
            assert (dirty["bid"] != clean["bid"]).any()


def test_parity(served):
    for record in family_records(served, "parity"):
        clean, dirty = pair(served, record)
        shift = dirty.bid[0] - clean.bid[0]
        assert shift >= 2.0 and dirty.ask[0] - clean.ask[0] == pytest.approx(shift)
        chain = minute_of(served, record)
        calls = chain[chain["right"] == "C"].set_index("strike")
        puts = chain[chain["right"] == "P"].set_index("strike")
        forward = calls["bid"] + calls["ask"] - puts["bid"] - puts["ask"]  # 2 (C - P)
        forward = forward / 2 + forward.index
        ours = forward[record["strike"]]
        spot = chain["underlying_price"].iloc[0]
        others = forward.drop(record["strike"])
        others = others.iloc[np.argsort(np.abs(others.index - spot))[:3]]
        assert (others - ours).min() > shift - 0.5


def test_staleness(served):
    for record in family_records(served, "staleness"):
        clean, dirty = pair(served, record)
        assert len(dirty) >= 31 and len(clean) == len(dirty)
        assert dirty["bid"].nunique() == dirty["ask"].nunique() == 1
        assert clean["bid"].nunique() > 1
        if record["dataset"] == "greeks":
            assert dirty["underlying_price"].nunique() > 10


def test_coverage(served):
    for record in family_records(served, "coverage"):
        clean, dirty = pair(served, record)
        assert len(clean) >= 10 and len(dirty) == 0


def test_reconciliation(served):
    for record in family_records(served, "reconciliation"):
        clean, dirty = pair(served, record)
        assert len(clean) == len(dirty) == 1
        last = served[1]["greeks"]
        last = last[rows_of(last, {**record, "timestamp": None})].iloc[-1]
        spread = last.ask - last.bid
        for column in ("close", "bid", "ask"):
            assert dirty[column][0] > clean[column][0]
            assert dirty[column][0] - (last.bid + last.ask) / 2 > 2 * spread
        assert dirty.high[0] >= dirty.close[0]


# --------------------------------------------------------------------------------------------
# Nothing else changed
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", [*INTRADAY, *EOD])
def test_rows_not_listed_are_the_clean_rows(served, dataset):
    clean, dirty, records = served
    clean, dirty = clean[dataset], dirty[dataset]
    mine = [r for r in records if r["dataset"] == dataset]
    listed_clean = np.zeros(len(clean), dtype=bool)
    listed_dirty = np.zeros(len(dirty), dtype=bool)
    for record in mine:
        c, d = rows_of(clean, record).to_numpy(), rows_of(dirty, record).to_numpy()
        listed_clean |= c
        listed_dirty |= d
        changed = CHANGED.get(record["family"])
        if changed is None or d.sum() != c.sum():
            continue  # calendar reprices whole rows; coverage drops them
        same = [k for k in clean.columns if k not in changed]
        pd.testing.assert_frame_equal(
            clean[c][same].reset_index(drop=True), dirty[d][same].reset_index(drop=True)
        )
        differ = clean[c][sorted(changed & set(clean.columns))].reset_index(drop=True) != dirty[d][
            sorted(changed & set(clean.columns))
        ].reset_index(drop=True)
        assert differ.any(axis=1).any(), record
    pd.testing.assert_frame_equal(
        clean[~listed_clean].reset_index(drop=True), dirty[~listed_dirty].reset_index(drop=True)
    )
    dropped = [r for r in mine if r["family"] == "coverage"]
    assert len(clean) - len(dirty) == sum(rows_of(clean, r).sum() for r in dropped)


# --------------------------------------------------------------------------------------------
# The command and the control API
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("nope", "anomaly family 'nope' is unknown"),
        ("parity:0", "not a whole number from 1 to 100"),
        ("parity:two", "not a whole number from 1 to 100"),
        ("parity:1.5", "not a whole number from 1 to 100"),
    ],
)
def test_the_flag_refuses_bad_values_naming_the_families(value, says):
    result = CliRunner().invoke(cli, ["simulator", "--chain", "tiny", "--anomaly", value])
    assert result.exit_code == exit_codes.USAGE
    text = " ".join(result.output.split())
    assert says in text and "--anomaly" in text
    if "family" in says:
        assert ", ".join(FAMILIES) in text


def test_the_flag_plants_in_a_real_process_and_the_control_api_lists_it():
    with SimulatorProcess(
        chain="tiny", today=TODAY.isoformat(), anomaly=["parity:2", "coverage"]
    ) as process:
        control = process.control
        assert control.anomalies() == {"anomalies": {"parity": 2, "coverage": 1}}
        planted = control.anomalies(SESSION)["planted"]
        assert sorted((r["family"], r["dataset"]) for r in planted) == sorted(
            [("parity", d) for d in INTRADAY] * 2 + [("coverage", d) for d in INTRADAY]
        )
        url = f"{process.base_url}/_sim/anomalies"
        bad = requests.post(url, json={"family": "nope"}, timeout=10)
        assert bad.status_code == 400 and "quote_sanity" in bad.json()["error"]
        bad = requests.post(url, json={"family": "parity", "count": -1}, timeout=10)
        assert bad.status_code == 400 and "from 1 to 100" in bad.json()["error"]
        bad = requests.get(url, params={"date": "someday"}, timeout=10)
        assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]
