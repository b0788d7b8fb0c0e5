"""The numbers of each dataset for a block of contracts of one session, vectorised.

Intraday rows (``greeks``, ``quote``) price every contract at every interval on the one-second
index path; bid/ask are the Black-Scholes price widened to the tick (0.05 under $3, else 0.10),
far wings bid zero, a few rows are unquoted (bid = ask = 0, greeks 0, ``iv_error`` 100 as the
terminal reports them) and a rare quote is crossed. End-of-day rows (``eod``, ``greeks_eod``,
``open_interest``) add volume, OHLC from a few intraday prices, and open interest. Every random
choice hashes the row's identity (seed, session, contract, time), so a value never depends on
how a request was split, filtered or ordered.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from spx_dagster.core.thetadata.vendor import (
    EOD_QUOTES_FROM,
    EOD_REPORT_TIME,
    GREEKS_EOD_COLUMNS,
    GREEKS_FIRST_ORDER_COLUMNS,
    IV_ERROR_UNQUOTED,
    OPEN_INTEREST_STAMP,
)
from spx_dagster.simulator.market import (
    CLOSE_SECOND,
    DIVIDEND_YIELD,
    OPEN_SECOND,
    SECONDS_PER_YEAR,
    MarketDay,
    hash_key,
    hash_normal,
    hash_uniform,
)
from spx_dagster.simulator.pricing import MIN_YEARS, black_scholes, smile, term_structure
from spx_dagster.simulator.render import ContractGroup

# SPX options trade on Cboe only. ThetaData's exchange code for it is not in the public docs;
# 5 is one of the codes the samples show. Condition 50 is what every sample quote carries.
SPX_EXCHANGE = 5
QUOTE_CONDITION = 50
CROSSED_RATE = 2e-4  # share of quoted rows whose bid is above the ask
LAMBDA_LIMIT = 99_999.0
INTRADAY = ("greeks", "quote")


def _seconds(time: dt.time) -> int:
    return time.hour * 3600 + time.minute * 60 + time.second


@dataclass(frozen=True)
class Session:
    """What every dataset of one session is generated from."""

    day: dt.date
    market: MarketDay
    seed: int

    def contract_keys(self, group: ContractGroup, idx: slice) -> np.ndarray:
        root = zlib.crc32(group.root.encode())
        strikes = np.rint(group.strikes[idx] * 1000).astype(np.int64)
        calls = group.is_call[idx].astype(np.int64)
        return hash_key(
            self.seed, self.day.toordinal(), root, group.expiration.toordinal(), strikes, calls
        )


def _row_keys(contract_keys: np.ndarray, ms_of_day: np.ndarray) -> np.ndarray:
    """One key per (contract, time): shape (contracts, times)."""
    return hash_key(contract_keys[:, None], np.broadcast_to(ms_of_day, (1, *np.shape(ms_of_day))))


def _years_to(group: ContractGroup, day: dt.date, seconds: np.ndarray) -> np.ndarray:
    settles = group.settles or dt.datetime.combine(group.expiration, dt.time(16))
    start = dt.datetime.combine(day, dt.time())
    left = (settles - start).total_seconds() - np.asarray(seconds, dtype=np.float64)
    return np.maximum(left, 0.0) / SECONDS_PER_YEAR


@dataclass
class Priced:
    """Black-Scholes inputs and outputs for contracts × times (2-D arrays)."""

    spot: np.ndarray
    years: np.ndarray
    vol: np.ndarray
    moneyness_z: np.ndarray
    greeks: dict[str, np.ndarray]


def price(
    session: Session,
    group: ContractGroup,
    idx: slice,
    seconds: np.ndarray,
    *,
    higher: bool = False,
    vol_scale: float = 1.0,
) -> Priced:
    """Price the contracts ``group[idx]`` at ``seconds`` after midnight (1-D shared or 2-D).

    ``vol_scale`` multiplies the smile (the calendar-arbitrage anomaly lowers one expiration's).
    """
    seconds = np.asarray(seconds)
    if seconds.ndim == 1:
        seconds = seconds[None, :]
    spot = session.market.index_at(seconds)
    years = _years_to(group, session.day, seconds)
    strike = group.strikes[idx][:, None]
    call = group.is_call[idx][:, None]
    rate = session.market.rate
    t = np.maximum(years, MIN_YEARS)
    atm = term_structure(session.market.atm_vol, t)
    moneyness = np.log(strike / (spot * np.exp((rate - DIVIDEND_YIELD) * t)))
    vol = smile(atm, moneyness, t) * vol_scale
    greeks = black_scholes(spot, strike, years, rate, DIVIDEND_YIELD, vol, call, higher=higher)
    z = moneyness / (atm * np.sqrt(t))
    return Priced(np.broadcast_to(spot, vol.shape), years, vol, z, greeks)


def _tick(price_: np.ndarray) -> np.ndarray:
    return np.where(price_ < 3.0, 0.05, 0.10)


def _to_tick(value: np.ndarray, tick: np.ndarray) -> np.ndarray:
    return np.round(np.round(value / tick) * tick, 2)


def quotes(priced: Priced, keys: np.ndarray, *, opening: np.ndarray | None = None) -> dict:
    """Bid/ask/sizes and which rows are unquoted, from the model price."""
    mid = priced.greeks["price"]
    tick = _tick(mid)
    half = 0.5 * tick + 0.025 * np.sqrt(mid)
    bid = np.maximum(np.floor((mid - half) / tick + 1e-9) * tick, 0.0)
    ask = np.maximum(np.ceil((mid + half) / tick - 1e-9) * tick, bid + tick)
    u = hash_uniform(keys, 1)
    unquoted = (mid < 0.025) & (u < 0.5)
    if opening is not None:
        unquoted |= opening & (u < 0.1)
    crossed = ~unquoted & (bid > 0) & (hash_uniform(keys, 2) < CROSSED_RATE)
    bid = np.where(crossed, ask + tick, bid)
    bid = np.round(np.where(unquoted, 0.0, bid), 2)
    ask = np.round(np.where(unquoted, 0.0, ask), 2)
    depth = 10.0 + 240.0 * np.exp(-0.5 * priced.moneyness_z**2)
    bid_size = np.where(bid > 0, 1 + np.floor(hash_uniform(keys, 3) * depth), 0)
    ask_size = np.where(ask > 0, 1 + np.floor(hash_uniform(keys, 4) * depth), 0)
    return {
        "bid": bid,
        "ask": ask,
        "bid_size": bid_size.astype(np.int64),
        "ask_size": ask_size.astype(np.int64),
        "bid_exchange": np.full(bid.shape, SPX_EXCHANGE, dtype=np.int64),
        "ask_exchange": np.full(bid.shape, SPX_EXCHANGE, dtype=np.int64),
        "bid_condition": np.full(bid.shape, QUOTE_CONDITION, dtype=np.int64),
        "ask_condition": np.full(bid.shape, QUOTE_CONDITION, dtype=np.int64),
        "unquoted": unquoted,
    }


def _greek_columns(priced: Priced, quote: dict, keys: np.ndarray, names) -> dict:
    g = priced.greeks
    live = ~quote["unquoted"]
    mid = 0.5 * (quote["bid"] + quote["ask"])
    base = np.where(mid > 0, mid, g["price"])
    lam = np.divide(g["delta"] * priced.spot, base, out=np.zeros_like(base), where=base > 1e-9)
    out = {name: np.where(live, g[name], 0.0) for name in names}
    out["lambda"] = np.where(live, np.clip(lam, -LAMBDA_LIMIT, LAMBDA_LIMIT), 0.0)
    noise = hash_normal(keys, 5) * np.where(quote["bid"] > 0, 0.002, 0.02)
    out["implied_vol"] = priced.vol
    out["iv_error"] = np.where(live, noise, IV_ERROR_UNQUOTED)
    return out


def intraday(
    dataset: str,
    session: Session,
    group: ContractGroup,
    idx: slice,
    ms_of_day: np.ndarray,
    *,
    vol_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """``greeks`` or ``quote`` rows of contracts ``group[idx]`` at ``ms_of_day`` (per contract,
    all times; contract-major order)."""
    seconds = ms_of_day // 1000
    priced = price(session, group, idx, seconds, vol_scale=vol_scale)
    keys = _row_keys(session.contract_keys(group, idx), ms_of_day)
    quote = quotes(priced, keys, opening=(seconds <= OPEN_SECOND)[None, :])
    times = np.broadcast_to(ms_of_day, keys.shape)
    if dataset == "quote":
        cols = {k: v for k, v in quote.items() if k != "unquoted"}
        cols["timestamp"] = times
    else:
        names = [c for c in GREEKS_FIRST_ORDER_COLUMNS if c in priced.greeks]
        cols = _greek_columns(priced, quote, keys, names)
        cols.update(
            bid=quote["bid"],
            ask=quote["ask"],
            timestamp=times,
            underlying_timestamp=times,
            underlying_price=priced.spot,
        )
    return {k: np.broadcast_to(v, keys.shape).reshape(-1) for k, v in cols.items()}


# --------------------------------------------------------------------------------------------
# End of day
# --------------------------------------------------------------------------------------------
def _trading(session: Session, group: ContractGroup, idx: slice, keys: np.ndarray) -> dict:
    """Volume, trade count, OHLC and last trade time of each contract (1-D arrays)."""
    opening = price(session, group, idx, np.array([OPEN_SECOND]))
    z0 = opening.moneyness_z[:, 0]
    dte = max((group.expiration - session.day).days, 0)
    expected = 4000.0 * np.exp(-0.5 * z0**2) / (1.0 + dte / 7.0) + 20.0 / (1.0 + np.abs(z0) ** 3)
    volume = np.floor(expected * np.exp(0.9 * hash_normal(keys, 10) - 0.4)).astype(np.int64)
    traded = volume > 0
    count = np.where(traded, np.maximum(1, volume // (1 + np.floor(hash_uniform(keys, 11) * 9))), 0)
    session_s = CLOSE_SECOND - OPEN_SECOND
    first = OPEN_SECOND + np.floor(hash_uniform(keys, 12) * 1800)
    last = CLOSE_SECOND - np.floor(hash_uniform(keys, 13) ** 2 * (session_s - 1800))
    last = np.maximum(last, first)
    sample = np.stack(
        [first, first + (last - first) / 3, first + 2 * (last - first) / 3, last], axis=1
    )
    prices = price(session, group, idx, sample).greeks["price"]
    tick = _tick(prices[:, -1])
    swing = 1.0 + 0.03 * hash_uniform(keys, 14)
    ohlc = {
        "open": prices[:, 0],
        "high": prices.max(axis=1) * swing,
        "low": prices.min(axis=1) / swing,
        "close": prices[:, -1],
    }
    ohlc = {k: np.where(traded, np.maximum(_to_tick(v, tick), 0.05), 0.0) for k, v in ohlc.items()}
    ohlc["high"] = np.maximum.reduce([ohlc["open"], ohlc["high"], ohlc["close"]])
    ohlc["low"] = np.where(traded, np.minimum.reduce([ohlc["open"], ohlc["low"], ohlc["close"]]), 0)
    last_ms = (last * 1000 + np.floor(hash_uniform(keys, 15) * 1000)).astype(np.int64)
    return {"volume": volume, "count": count.astype(np.int64), "last_ms": last_ms, **ohlc}


def end_of_day(
    dataset: str, session: Session, group: ContractGroup, idx: slice
) -> dict[str, np.ndarray]:
    """``eod``, ``greeks_eod`` or ``open_interest`` rows (one per contract)."""
    keys = session.contract_keys(group, idx)
    report_ms = _seconds(EOD_REPORT_TIME) * 1000
    if dataset == "open_interest":
        return _open_interest(session, group, idx, keys)
    closing = price(session, group, idx, np.array([CLOSE_SECOND]), higher=dataset == "greeks_eod")
    quote = {k: v[:, 0] for k, v in quotes(closing, keys[:, None]).items()}
    if session.day < EOD_QUOTES_FROM:  # EOD reports had no quote then
        for name in ("bid", "ask", "bid_size", "ask_size"):
            quote[name] = np.zeros_like(quote[name])
    trading = _trading(session, group, idx, keys)
    cols = {k: v for k, v in quote.items() if k != "unquoted"}
    cols.update({k: trading[k] for k in ("open", "high", "low", "close", "volume", "count")})
    if dataset == "eod":
        created = report_ms + np.floor(hash_uniform(keys, 20) * 120_000).astype(np.int64)
        cols["created"] = created
        cols["last_trade"] = np.where(trading["volume"] > 0, trading["last_ms"], created)
        return cols
    flat = {k: v[:, 0] for k, v in closing.greeks.items()}
    priced = Priced(
        closing.spot[:, 0], closing.years[:, 0], closing.vol[:, 0], closing.moneyness_z[:, 0], flat
    )
    greek_names = [c for c in GREEKS_EOD_COLUMNS if c in flat]
    cols.update(_greek_columns(priced, quote, keys, greek_names))
    cols["timestamp"] = (
        CLOSE_SECOND * 1000 - 1 - np.floor(hash_uniform(keys, 21) * 999).astype(np.int64)
    )
    cols["underlying_timestamp"] = np.full(len(keys), report_ms + 28_710, dtype=np.int64)
    cols["underlying_price"] = np.full(len(keys), session.market.close)
    return cols


def _open_interest(session: Session, group: ContractGroup, idx: slice, keys: np.ndarray) -> dict:
    opening = price(session, group, idx, np.array([OPEN_SECOND]))
    z = opening.moneyness_z[:, 0]
    dte = max((group.expiration - session.day).days, 0)
    level = 9000.0 * np.exp(-0.5 * (z / 1.5) ** 2) * (1.0 + dte / 60.0) ** -0.3 + 5.0
    oi = np.floor(level * np.exp(0.7 * hash_normal(keys, 30) - 0.25)).astype(np.int64)
    stamp = _seconds(OPEN_INTEREST_STAMP) * 1000
    return {
        "open_interest": oi,
        "timestamp": stamp + 1000 * np.floor(hash_uniform(keys, 31) * 10).astype(np.int64),
    }
