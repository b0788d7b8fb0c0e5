"""Every tolerance of the quality checks, in one place, with the market's eras.

Spreads: SPX option spreads narrowed as SPXW listings and electronic market making grew; a
spread is *wide* when it exceeds both the tick floor and the era's share of the mid, a smaller
share near the money than in the wings (sources: Cboe's SPX market-quality reports; the
academic SPX filters drop quotes whose spread exceeds the mid, i.e. a share of 2).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

# (first session of the era, share of mid near the money, share of mid in the wings)
SPREAD_ERAS: tuple[tuple[dt.date, float, float], ...] = (
    (dt.date(2000, 1, 1), 0.75, 3.0),
    (dt.date(2016, 1, 1), 0.50, 2.0),
    (dt.date(2022, 5, 11), 0.35, 1.5),  # 0DTE on every weekday from here
)


# A family's score below its alert level raises an alert (``spx-data quality``, the UI check's
# severity): the share of checked rows it may doubt before someone should look.
ALERT_BELOW: dict[str, float] = {
    "quote_sanity": 0.99,
    "greeks_bounds": 0.99,
    "strike_arbitrage": 0.995,
    "parity": 0.995,
    "staleness": 0.99,
    "calendar_arbitrage": 0.995,
    "coverage": 0.99,
    "reconciliation": 0.99,
}
ALERT_BELOW_DEFAULT = 0.99


def alert_threshold(family: str) -> float:
    """The score below which ``family`` alerts."""
    return ALERT_BELOW.get(family, ALERT_BELOW_DEFAULT)


@dataclass(frozen=True)
class Thresholds:
    """Tolerances of the row checks and of strike arbitrage (defaults: the documented ones).

    - ``spread_floor``: a spread up to this many dollars is never wide (two ticks of $0.10).
    - ``near_money``: |ln(K / S)| up to this is "near the money" for the spread share.
    - ``carry_dividend_max`` / ``carry_rate_max``: the widest plausible dividend yield and rate;
      the intrinsic bound of a European option is discounted with them so that a deep ITM put or
      a long-dated call is not flagged for trading below K − S or S − K.
    - ``iv_max``: the largest plausible implied volatility (5 = 500 %).
    - ``iv_error_max``: |iv_error| beyond this is a poor IV fit (the terminal's 100 marks an
      unquoted row, which is skipped, not flagged).
    - ``moneyness_sd``: a strike further than this many standard deviations (IV·√T) from the
      underlying is clearly ITM or OTM, so its |delta| must lie on that side of 0.5.
    - ``arbitrage_tick``: slack added to the half-spreads in the strike arbitrage tests.
    """

    spread_floor: float = 0.20
    near_money: float = 0.05
    carry_dividend_max: float = 0.04
    carry_rate_max: float = 0.08
    iv_max: float = 5.0
    iv_error_max: float = 0.05
    moneyness_sd: float = 2.0
    arbitrage_tick: float = 0.01
    # Parity (``parity.py``). The rate only discounts C − P, a small term before a year out:
    # 4 % ± 4 % spans the short rates of 2000-2024 (Fed funds 0-6.5 %), so no era table.
    parity_rate: float = 0.04
    parity_rate_slack: float = 0.04
    parity_moneyness: float = 0.05  # |ln(K / F)| of the strikes whose forwards are compared
    parity_min_strikes: int = 3  # fewer near strikes: a median cannot outvote one bad one
    # Staleness (``staleness.py``): a quote may stand still this long whatever the index does
    # (the N); after that, once |delta| × the index's range exceeds this many spreads,
    # the market maker would have requoted.
    stale_minutes: int = 30
    stale_spreads: float = 1.0
    # One minute's contracts share one index level: 0.1 % (≈ $6 at 5,600) is more than the
    # index moves within a minute on all but crash days, less than any stale or foreign level.
    underlying_tolerance: float = 0.001
    # Calendar arbitrage (``calendar_arbitrage.py``): the smile is compared on a grid of forward
    # moneyness (0.5 % steps, ±10 %: where SPX expirations overlap and quotes are tight), and
    # an IV fit is trusted to 0.2 vol points beyond what the spread allows.
    calendar_grid_step: float = 0.005
    calendar_grid_max: float = 0.10
    calendar_iv_tolerance: float = 0.002
    # Coverage (``coverage.py``): the era's listing rules are compared with the vendor's listing
    # over the next week (every weekly series is listed weeks ahead); ``listing_rules`` False
    # trusts the vendor's listing (a reduced chain, like the simulator's tiny one). Drift: a
    # chain below half or above twice the median contract count of the previous 20 sessions
    # (from 5 sessions on).
    listing_rules: bool = True
    listing_horizon_days: int = 7
    drift_ratio: float = 0.5
    drift_sessions: int = 20
    drift_min_sessions: int = 5
    # Reconciliation (``reconciliation.py``): EOD quotes (16:15 at the latest) may differ from
    # the last intraday bar by the wider spread, the tick slack and what |delta| times a 0.2 %
    # index move is worth.
    eod_index_move: float = 0.002

    @classmethod
    def from_settings(cls, quality: Any) -> Thresholds:
        """The thresholds with every ``quality.*`` key of the same name as a field applied
        (``quality`` None: the defaults)."""
        if quality is None:
            return cls()
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in dict(quality).items() if k in names}
        return cls(**given)

    @staticmethod
    def spread_shares(session: dt.date) -> tuple[float, float]:
        """(near the money, wings) share of the mid a spread may reach on ``session``."""
        near, wings = SPREAD_ERAS[0][1:]
        for start, era_near, era_wings in SPREAD_ERAS:
            if session >= start:
                near, wings = era_near, era_wings
        return near, wings
