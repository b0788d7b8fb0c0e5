"""The simulated market: SPX level by date, the intraday index path, volatility and rates.

Everything is a pure function of ``seed`` and the date, so any session can be generated on its
own, in any order, in any process, with the same result:

- the daily level is a log-linear trend through rough real SPX levels at the start of each year,
  times a smooth seeded wiggle (sinusoids of 7-97 days) and a small per-day jitter; a session's
  close is the next calendar day's level, so overnight gaps are small;
- the intraday path is a Brownian bridge at one-second resolution from the open (09:30) to the
  close (16:00), flat until 16:15 (the index stops at 16:00, SPX options trade until 16:15);
- the ATM implied volatility follows a rough real level per year with a seeded wiggle; rates are
  rough real short rates per year; a constant dividend yield.

Counter-based hashing (:func:`hash_uniform`) gives per-row random numbers that depend only on the
row's identity (contract and time), never on how a request was split or ordered.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from spx_dagster.core.thetadata.vendor import INTRADAY_END, INTRADAY_START, SPX_OPTIONS_CLOSE

# Rough SPX level on January 1st of each year (the previous year's close, rounded).
YEAR_START_LEVEL = {
    2006: 1248,
    2007: 1418,
    2008: 1468,
    2009: 903,
    2010: 1115,
    2011: 1258,
    2012: 1258,
    2013: 1426,
    2014: 1848,
    2015: 2059,
    2016: 2044,
    2017: 2239,
    2018: 2674,
    2019: 2507,
    2020: 3231,
    2021: 3756,
    2022: 4766,
    2023: 3840,
    2024: 4770,
    2025: 5882,
    2026: 6846,
}
TREND_BEYOND = 0.07  # yearly drift used before the first and after the last anchor
# Rough average VIX per year, as the ATM implied volatility around 30 days.
YEAR_VOL = {
    2006: 0.13,
    2007: 0.17,
    2008: 0.32,
    2009: 0.31,
    2010: 0.23,
    2011: 0.24,
    2012: 0.18,
    2013: 0.14,
    2014: 0.14,
    2015: 0.16,
    2016: 0.16,
    2017: 0.11,
    2018: 0.17,
    2019: 0.15,
    2020: 0.29,
    2021: 0.19,
    2022: 0.26,
    2023: 0.17,
    2024: 0.15,
    2025: 0.19,
    2026: 0.16,
}
# Rough short rate per year.
YEAR_RATE = {
    2006: 0.048,
    2007: 0.045,
    2008: 0.015,
    2009: 0.002,
    2010: 0.002,
    2011: 0.001,
    2012: 0.001,
    2013: 0.001,
    2014: 0.001,
    2015: 0.002,
    2016: 0.005,
    2017: 0.011,
    2018: 0.02,
    2019: 0.021,
    2020: 0.006,
    2021: 0.001,
    2022: 0.019,
    2023: 0.051,
    2024: 0.052,
    2025: 0.042,
    2026: 0.037,
}
DIVIDEND_YIELD = 0.015
REALISED_TO_IMPLIED = 0.85  # realised intraday volatility as a fraction of the ATM implied one

SECONDS_PER_YEAR = 365.0 * 86400.0
OPEN_SECOND = INTRADAY_START.hour * 3600 + INTRADAY_START.minute * 60
CLOSE_SECOND = INTRADAY_END.hour * 3600 + INTRADAY_END.minute * 60
LAST_SECOND = SPX_OPTIONS_CLOSE.hour * 3600 + SPX_OPTIONS_CLOSE.minute * 60

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# --------------------------------------------------------------------------------------------
# Counter-based random numbers
# --------------------------------------------------------------------------------------------
def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_key(*parts: int | np.ndarray) -> np.ndarray:
    """One uint64 key per element from integer parts (broadcast together)."""
    key = np.uint64(0x9E3779B97F4A7C15)
    for part in parts:
        value = np.asarray(part).astype(np.int64).astype(np.uint64)
        with np.errstate(over="ignore"):
            key = mix64(key ^ (value + np.uint64(0x632BE59BD9B4E019)))
    return np.asarray(key, dtype=np.uint64)


def hash_uniform(key: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) numbers, one per key, independent per ``stream``."""
    with np.errstate(over="ignore"):
        mixed = mix64(key ^ (np.uint64(stream) * np.uint64(0xD1B54A32D192ED03)))
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def hash_normal(key: np.ndarray, stream: int) -> np.ndarray:
    """Standard normal numbers, one per key (Box-Muller on two hashed uniforms)."""
    u1 = hash_uniform(key, stream * 2 + 1)
    u2 = hash_uniform(key, stream * 2 + 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


# --------------------------------------------------------------------------------------------
# Yearly anchors
# --------------------------------------------------------------------------------------------
def _year_fraction(ordinals: np.ndarray) -> np.ndarray:
    """Dates (proleptic ordinals) as fractional years, e.g. 2024.5."""
    base = dt.date(2000, 1, 1).toordinal()
    return 2000.0 + (ordinals - base) / 365.2425


def _interp_by_year(ordinals: np.ndarray, table: dict[int, float], *, mid_year: bool):
    years = np.array(sorted(table), dtype=np.float64)
    values = np.array([table[int(y)] for y in years], dtype=np.float64)
    x = _year_fraction(ordinals)
    return np.interp(x, years + (0.5 if mid_year else 0.0), values)


def trend_level(ordinals: np.ndarray) -> np.ndarray:
    """The anchor trend: log-linear between January 1st levels, 7 %/year outside them."""
    years = np.array(sorted(YEAR_START_LEVEL), dtype=np.float64)
    logs = np.log([YEAR_START_LEVEL[int(y)] for y in years])
    x = _year_fraction(np.asarray(ordinals, dtype=np.float64))
    inside = np.interp(x, years, logs)
    before = logs[0] + (x - years[0]) * np.log1p(TREND_BEYOND)
    after = logs[-1] + (x - years[-1]) * np.log1p(TREND_BEYOND)
    return np.exp(np.where(x < years[0], before, np.where(x > years[-1], after, inside)))


@dataclass(frozen=True)
class MarketDay:
    """One session's market: levels, vol, rate and the one-second index path.

    Attributes:
        day: The session date.
        open: Index level at 09:30.
        close: Index level at 16:00.
        atm_vol: ATM implied volatility around 30 days.
        rate: Continuously compounded short rate.
        path: Index level per second from 09:30:00 to 16:15:00 (flat after 16:00), rounded to
            cents as the terminal reports it.
    """

    day: dt.date
    open: float
    close: float
    atm_vol: float
    rate: float
    path: np.ndarray

    def index_at(self, second_of_day: np.ndarray) -> np.ndarray:
        """Index levels at the given seconds after midnight ET (clamped to the path)."""
        idx = np.clip(np.asarray(second_of_day) - OPEN_SECOND, 0, len(self.path) - 1)
        return self.path[idx.astype(np.int64)]


class Market:
    """The seeded market all chains are priced on.

    Args:
        seed: Changes every level, path and random draw; the same seed gives the same market.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 1])
        self._periods = np.array([97.0, 41.0, 17.0, 7.0])
        self._level_amps = np.array([0.035, 0.018, 0.009, 0.004])
        self._level_phases = rng.uniform(0, 2 * np.pi, 4)
        self._vol_phases = rng.uniform(0, 2 * np.pi, 4)
        self._days: OrderedDict[dt.date, MarketDay] = OrderedDict()
        self._lock = threading.Lock()

    # ---- by date, vectorised --------------------------------------------------------------
    def levels(self, ordinals: np.ndarray) -> np.ndarray:
        """Index level at the open of each date (proleptic ordinals)."""
        ordinals = np.asarray(ordinals, dtype=np.int64)
        x = ordinals.astype(np.float64)[..., None]
        wiggle = np.sum(
            self._level_amps * np.sin(2 * np.pi * x / self._periods + self._level_phases), axis=-1
        )
        jitter = 0.003 * hash_normal(hash_key(self.seed, 11, ordinals), 0)
        return trend_level(ordinals) * np.exp(wiggle + jitter)

    def atm_vols(self, ordinals: np.ndarray) -> np.ndarray:
        """ATM implied volatility (about 30 days) of each date."""
        ordinals = np.asarray(ordinals, dtype=np.int64)
        x = ordinals.astype(np.float64)[..., None]
        wiggle = np.sum(
            np.array([0.2, 0.1, 0.06, 0.03])
            * np.sin(2 * np.pi * x / self._periods + self._vol_phases),
            axis=-1,
        )
        base = _interp_by_year(ordinals, YEAR_VOL, mid_year=True)
        return np.clip(base * np.exp(wiggle), 0.08, 0.85)

    def rates(self, ordinals: np.ndarray) -> np.ndarray:
        return _interp_by_year(np.asarray(ordinals, dtype=np.int64), YEAR_RATE, mid_year=True)

    # ---- one session ------------------------------------------------------------------------
    def day(self, day: dt.date) -> MarketDay:
        """The market of one session (cached: the path is 24k points)."""
        with self._lock:
            cached = self._days.get(day)
            if cached is not None:
                self._days.move_to_end(day)
                return cached
        built = self._build_day(day)
        with self._lock:
            self._days[day] = built
            while len(self._days) > 64:
                self._days.popitem(last=False)
        return built

    def _build_day(self, day: dt.date) -> MarketDay:
        ordinal = day.toordinal()
        open_, close = self.levels(np.array([ordinal, ordinal + 1]))
        vol = float(self.atm_vols(np.array([ordinal]))[0])
        rate = float(self.rates(np.array([ordinal]))[0])
        steps = CLOSE_SECOND - OPEN_SECOND
        rng = np.random.default_rng([self.seed, 2, ordinal])
        sigma = vol * REALISED_TO_IMPLIED / np.sqrt(252.0) / np.sqrt(steps)
        walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(steps) * sigma)])
        t = np.linspace(0.0, 1.0, steps + 1)
        log_path = np.log(open_) + t * (np.log(close) - np.log(open_)) + walk - t * walk[-1]
        tail = np.full(LAST_SECOND - CLOSE_SECOND, log_path[-1])
        path = np.round(np.exp(np.concatenate([log_path, tail])), 2)
        return MarketDay(
            day=day,
            open=float(path[0]),
            close=float(path[steps]),
            atm_vol=vol,
            rate=rate,
            path=path,
        )
