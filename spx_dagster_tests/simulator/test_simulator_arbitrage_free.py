"""The clean simulator is free of static arbitrage by construction, within half-spreads.

At a few minutes of a session, every (root, expiration) of the ``fast`` tiny and small chains is
read over HTTP with the project's wire code and checked the way a quant would: call mids
non-increasing and put mids non-decreasing in strike, both convex in strike, total implied
variance non-decreasing in time to expiry at the same forward moneyness, and the put-call parity
forward the same across near-the-money strikes. Crossed quotes (a documented quirk of the clean
data, ``generate.CROSSED_RATE``) and unquoted rows are left out, as the checks skip them.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools

import numpy as np
import pyarrow as pa
import pytest
import requests

from spx_dagster.core.thetadata.vendor import ENDPOINTS
from spx_dagster.core.thetadata.wire import SPECS, BodyStream, CsvAnswer
from spx_dagster.simulator import SimulatorServer

TODAY = dt.date(2025, 1, 31)
SESSION = dt.date(2024, 11, 4)
MINUTES = ("09:31:00", "12:00:00", "15:59:00")
SECONDS_PER_YEAR = 365.0 * 86400.0


def greeks_at(sim: SimulatorServer, root: str, expiration: dt.date, minute: str) -> pa.Table:
    url = f"{sim.base_url}/v3{ENDPOINTS['greeks'].path}"
    params = {
        "symbol": root,
        "expiration": expiration.strftime("%Y%m%d"),
        "date": SESSION.strftime("%Y%m%d"),
        "interval": "1m",
        "start_time": minute,
        "end_time": minute,
    }
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    answer = CsvAnswer(BodyStream(io.BytesIO(response.content), url=url), SPECS["greeks"])
    table = pa.Table.from_batches(list(answer), schema=SPECS["greeks"].schema)
    assert not answer.malformed and table.num_rows
    return table


def side(table: pa.Table, right: str) -> dict[str, np.ndarray]:
    """Strikes, mids and half-spreads of one right's two-sided, uncrossed quotes."""
    cols = {name: table.column(name).to_numpy() for name in ("strike", "right", "bid", "ask")}
    ok = (cols["right"] == right) & (cols["ask"] > 0) & (cols["ask"] >= cols["bid"])
    order = np.argsort(cols["strike"][ok])
    bid, ask = cols["bid"][ok][order], cols["ask"][ok][order]
    return {"strike": cols["strike"][ok][order], "mid": (bid + ask) / 2, "half": (ask - bid) / 2}


def vertical_breaks(q: dict, sign: float) -> np.ndarray:
    """How far adjacent mids move the wrong way past their half-spreads (>0: arbitrage)."""
    step = sign * np.diff(q["mid"])  # calls: sign +1 (must not rise), puts: -1 (must not fall)
    return step - (q["half"][1:] + q["half"][:-1])


def butterfly_breaks(q: dict) -> np.ndarray:
    k, m, h = q["strike"], q["mid"], q["half"]
    w = (k[2:] - k[1:-1]) / (k[2:] - k[:-2])
    chord = w * m[:-2] + (1 - w) * m[2:]
    tolerance = w * h[:-2] + h[1:-1] + (1 - w) * h[2:]
    return (m[1:-1] - chord) - tolerance


@pytest.mark.parametrize("chain", ["tiny", "small"])
def test_clean_chains_have_no_static_arbitrage(chain):
    with SimulatorServer(port=0, chain=chain, seed=0, today=TODAY) as sim:
        listing = sim.terminal.listing
        chains = [
            (exp, minute, greeks_at(sim, root, exp.date, minute))
            for root in listing.roots
            for exp in listing.listed_on(root, SESSION)
            for minute in MINUTES
        ]
    checked = {"vertical": 0, "butterfly": 0, "parity": 0, "calendar": 0}
    smiles: dict[str, list] = {minute: [] for minute in MINUTES}
    for exp, minute, table in chains:
        where = f"{exp.root} {exp.date} {minute}"
        calls, puts = side(table, "C"), side(table, "P")
        for q, sign in ((calls, 1.0), (puts, -1.0)):
            assert (vertical_breaks(q, sign) <= 1e-9).all(), where
            assert (butterfly_breaks(q) <= 1e-9).all(), where
            checked["vertical"] += len(q["mid"]) - 1
            checked["butterfly"] += max(len(q["mid"]) - 2, 0)

        # Parity: C - P = D (F - K) is linear in K with one forward per expiration.
        both, ci, pi = np.intersect1d(calls["strike"], puts["strike"], return_indices=True)
        spot = float(table.column("underlying_price")[0].as_py())
        near = np.argsort(np.abs(both - spot))[:6]
        if len(near) >= 3:
            diff = calls["mid"][ci][near] - puts["mid"][pi][near]
            slope, level = np.polyfit(both[near], diff, 1)
            residual = diff - (slope * both[near] + level)
            tolerance = calls["half"][ci][near] + puts["half"][pi][near]
            assert (np.abs(residual) <= tolerance).all(), where
            discount = -slope
            assert 0.95 < discount < 1.01, where  # e^-rT, up to the rounding of the mids
            forward = level / discount
            assert abs(forward / spot - 1) < 0.01, where
            checked["parity"] += len(near)

            moment = dt.datetime.combine(SESSION, dt.time.fromisoformat(minute))
            years = (exp.expires_at - moment).total_seconds() / SECONDS_PER_YEAR
            strikes = table.column("strike").to_numpy()
            is_call = table.column("right").to_numpy() == "C"
            iv = table.column("implied_vol").to_numpy()
            smiles[minute].append((years, np.log(strikes[is_call] / forward), iv[is_call], where))

    # Calendar: total variance at the same forward moneyness grows with time to expiry.
    for by_expiry in smiles.values():
        by_expiry.sort(key=lambda s: s[0])
        for (t1, k1, v1, w1), (t2, k2, v2, w2) in itertools.pairwise(by_expiry):
            if t2 - t1 < 1e-6:
                continue  # AM and PM contracts settling at once
            grid = np.linspace(max(k1.min(), k2.min()), min(k1.max(), k2.max()), 9)
            o1, o2 = np.argsort(k1), np.argsort(k2)
            short = np.interp(grid, k1[o1], v1[o1]) ** 2 * t1
            long = np.interp(grid, k2[o2], v2[o2]) ** 2 * t2
            assert (long >= short * 0.98).all(), f"{w1} vs {w2}"
            checked["calendar"] += len(grid)
    assert all(n > 0 for n in checked.values()), checked
