"""Realistic small option tables for tests: any dataset, any session, typed per datasets.SCHEMAS.

Prices come from Black-Scholes on a flat 20 % volatility around a spot of 5000, so calls and puts
have deltas of the right sign, far wings are zero-quoted (bid = ask = 0, iv_error 100, as the
vendor sends them) and intraday contracts have exactly one row per interval, contract by contract
and in time order (as the terminal answers). Use ``make_table`` for one response, and
``stage_session`` to lay out a whole session's staged responses as the client would.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage.layout import PartKey, TempLayout
from spx_dagster.core.storage.stage_tables import write_stage_table
from spx_dagster.core.thetadata.vendor import (
    EOD_REPORT_TIME,
    INTERVALS,
    INTRADAY_END,
    IV_ERROR_UNQUOTED,
    OPEN_INTEREST_STAMP,
)
from spx_dagster.core.validation.schemas import ValidationContext

SPOT = 5000.0
VOLATILITY = 0.20
RATE = 0.05
STRIKE_STEP = 5.0
# Below this theoretical value a contract is not quoted (zero bid and ask), as in the far wings.
UNQUOTED_BELOW = 0.05


def expirations_for(session: dt.date, count: int = 3) -> list[dt.date]:
    """``count`` expirations from the session on: 0DTE, then the following weekdays."""
    out, day = [], session
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def strikes_around(spot: float = SPOT, count: int = 10, step: float = STRIKE_STEP) -> np.ndarray:
    """``count`` strikes centred on ``spot`` (5-point spacing, as near the money)."""
    first = round(spot / step) * step - (count // 2) * step
    return first + step * np.arange(count, dtype=np.float64)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2.0)))


def _black_scholes(spot, strike, years, is_call):
    sqrt_t = np.sqrt(years)
    d1 = (np.log(spot / strike) + (RATE + 0.5 * VOLATILITY**2) * years) / (VOLATILITY * sqrt_t)
    d2 = d1 - VOLATILITY * sqrt_t
    discount = np.exp(-RATE * years)
    call = spot * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    put = call - spot + strike * discount
    delta = np.where(is_call, _norm_cdf(d1), _norm_cdf(d1) - 1.0)
    return np.where(is_call, call, put), delta


def _stamp_ms(day: dt.date, time: dt.time) -> int:
    from spx_dagster.core.calendar import ET

    return int(dt.datetime.combine(day, time, tzinfo=ET).timestamp() * 1000)


def make_table(
    dataset: str,
    session: dt.date,
    *,
    roots: Sequence[str] = ("SPXW",),
    expirations: Sequence[dt.date] | None = None,
    strikes: Sequence[float] | None = None,
    n_strikes: int = 10,
    interval: str = "1m",
    end_time: dt.time = INTRADAY_END,
    spot: float = SPOT,
    seed: int = 0,
) -> pa.Table:
    """One realistic response of ``dataset`` for ``session`` (every root x expiration x strike).

    Rows come contract by contract (root, expiration, strike, right), intraday rows in time order
    over the session window (early closes included, see ``ValidationContext``).
    """
    spec = DATASETS[dataset]
    rng = np.random.default_rng(seed)
    exps = list(expirations) if expirations is not None else expirations_for(session, 1)
    strike_list = np.asarray(
        strikes if strikes is not None else strikes_around(spot, n_strikes), dtype=np.float64
    )
    contracts = [
        (root, exp, strike, right)
        for root in roots
        for exp in exps
        for strike in strike_list
        for right in ("C", "P")
    ]
    if spec.intraday:
        start, end = ValidationContext(session, interval, end_time=end_time).intraday_window
        step = INTERVALS[interval]
        stamps = np.arange(
            int(start.timestamp() * 1000), int(end.timestamp() * 1000) + 1, step, dtype=np.int64
        )
    else:
        stamp_time = OPEN_INTEREST_STAMP if dataset == "open_interest" else EOD_REPORT_TIME
        stamps = np.array([_stamp_ms(session, stamp_time)], dtype=np.int64)
    per = stamps.size
    n = len(contracts) * per
    root_col = np.repeat([c[0] for c in contracts], per)
    exp_col = np.repeat([c[1] for c in contracts], per)
    strike_col = np.repeat([c[2] for c in contracts], per)
    right_col = np.repeat([c[3] for c in contracts], per)
    stamp_col = np.tile(stamps, len(contracts))
    is_call = right_col == "C"
    close_ms = _stamp_ms(session, dt.time(16, 0))
    days_left = np.array([(e - session).days for e in exp_col], dtype=np.float64)
    minutes_left = (close_ms - np.minimum(stamp_col, close_ms)) / 60_000.0
    years = np.maximum(days_left * 1440 + minutes_left, 1.0) / (365.0 * 1440)
    drift = np.cumsum(rng.normal(0.0, 0.5, per))  # one path of the index for the whole chain
    underlying = spot + np.tile(drift, len(contracts))
    value, delta = _black_scholes(underlying, strike_col, years, is_call)
    quoted = value >= UNQUOTED_BELOW
    half_spread = np.maximum(0.05, value * 0.01)
    bid = np.where(quoted, np.maximum(np.round(value - half_spread, 2), 0.0), 0.0)
    ask = np.where(quoted, np.round(value + half_spread, 2), 0.0)
    columns: dict[str, np.ndarray | list] = {
        "root": root_col,
        "expiration": exp_col,
        "strike": strike_col,
        "right": right_col,
        "bid": bid,
        "ask": ask,
        "delta": delta,
        "implied_vol": np.where(quoted, VOLATILITY + rng.normal(0, 0.002, n), 0.0),
        "iv_error": np.where(quoted, rng.normal(0, 1e-4, n), IV_ERROR_UNQUOTED),
        "underlying_price": np.round(underlying, 2),
        "open_interest": rng.integers(0, 20_000, n),
        "volume": rng.integers(0, 5_000, n),
        "count": rng.integers(0, 500, n),
        "bid_size": np.where(quoted, rng.integers(1, 200, n), 0),
        "ask_size": np.where(quoted, rng.integers(1, 200, n), 0),
        "bid_exchange": np.full(n, 5),
        "ask_exchange": np.full(n, 5),
        "bid_condition": np.full(n, 50),
        "ask_condition": np.full(n, 50),
    }
    for name in ("open", "high", "low", "close"):
        columns[name] = np.round(np.maximum(value * rng.uniform(0.95, 1.05, n), 0.0), 2)
    arrays = []
    for field in spec.schema:
        name = field.name
        if pa.types.is_timestamp(field.type):
            ms = (
                stamp_col
                if name in ("timestamp", "created", "underlying_timestamp")
                else (stamp_col - 60_000)
            )
            arrays.append(pa.array(ms, pa.int64()).cast(pa.timestamp("ms")).cast(field.type))
        elif name in columns:
            arrays.append(pa.array(columns[name]).cast(field.type))
        elif name == "vega":  # never negative (greeks_bounds flags that); same draws as before
            arrays.append(pa.array(np.abs(rng.normal(0.0, 1.0, n))).cast(field.type))
        else:  # the other greeks: small finite numbers; nothing checks their range
            arrays.append(pa.array(rng.normal(0.0, 1.0, n)).cast(field.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def stage_session(
    temp_dir: Path,
    session: dt.date,
    datasets: Iterable[str] = ("greeks", "eod", "open_interest"),
    *,
    roots: Sequence[str] = ("SPX", "SPXW"),
    expirations: Sequence[dt.date] | None = None,
    n_strikes: int = 6,
    interval: str = "1m",
    seed: int = 0,
) -> list[tuple[str, dt.date]]:
    """Write a session's staged responses as the client does; return the listed expirations.

    Intraday datasets get one file per root and expiration, the others one ``ALL`` file per root.
    """
    exps = list(expirations) if expirations is not None else expirations_for(session, 2)
    for i, dataset in enumerate(datasets):
        for j, root in enumerate(roots):
            if DATASETS[dataset].intraday:
                for k, exp in enumerate(exps):
                    table = make_table(
                        dataset,
                        session,
                        roots=[root],
                        expirations=[exp],
                        n_strikes=n_strikes,
                        interval=interval,
                        seed=seed + 100 * i + 10 * j + k,
                    )
                    write_stage_table(
                        TempLayout.of(temp_dir).staged_file(session, dataset, PartKey(root, exp)),
                        table,
                    )
            else:
                table = make_table(
                    dataset,
                    session,
                    roots=[root],
                    expirations=exps,
                    n_strikes=n_strikes,
                    seed=seed + 100 * i + 10 * j,
                )
                write_stage_table(
                    TempLayout.of(temp_dir).staged_file(session, dataset, PartKey(root, None)),
                    table,
                )
    return [(root, exp) for root in roots for exp in exps]
