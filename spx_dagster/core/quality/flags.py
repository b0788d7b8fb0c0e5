"""The ``flags`` bitmask: one documented bit per check, each owned by one family.

A researcher keeps the rows no check doubts with ``WHERE flags = 0``, or tests the bits they
care about, e.g. ``WHERE flags & 512 = 0`` (no vertical-spread arbitrage). Bits are never
renumbered: a published file keeps its meaning.
"""

from __future__ import annotations

from enum import IntFlag

from spx_dagster.core.quality.families import Family


class Flag(IntFlag):
    CROSSED = 1 << 0  # bid > ask
    ZERO_BID = 1 << 1  # bid = 0 while ask > 0
    WIDE_SPREAD = 1 << 2  # ask − bid beyond the era's and moneyness' share of the mid
    BELOW_INTRINSIC = 1 << 3  # mid below intrinsic value by more than half the spread
    DELTA_BOUNDS = 1 << 4  # call delta outside [0, 1], put delta outside [−1, 0]
    NEGATIVE_VEGA = 1 << 5  # vega < 0
    IV_BOUNDS = 1 << 6  # implied_vol outside (0, 5]
    IV_ERROR = 1 << 7  # |iv_error| beyond the tolerance
    DELTA_MONEYNESS = 1 << 8  # |delta| on the wrong side of 0.5 for a clearly ITM/OTM strike
    VERTICAL = 1 << 9  # call mid rising / put mid falling in strike beyond the half-spreads
    BUTTERFLY = 1 << 10  # price not convex in strike beyond the half-spreads
    PARITY_FORWARD = 1 << 11  # a strike's put-call parity forward off the minute's median
    CARRY_BAND = 1 << 12  # the minute's parity forward implies an implausible carry
    STALE_QUOTE = 1 << 13  # bid and ask frozen for stale_minutes while the index moved
    UNDERLYING_MISMATCH = 1 << 14  # underlying_price off the minute's median
    CALENDAR = 1 << 15  # total implied variance below an earlier expiration's (same k, minute)
    INCOMPLETE_BARS = 1 << 16  # the row's contract lacks bars of the session's window
    NO_INTRADAY = 1 << 17  # an EOD row of a contract without intraday bars
    EOD_MISMATCH = (
        1 << 18
    )  # EOD bid/ask off the last intraday bar, or close outside the day's quotes


FLAG_FAMILY: dict[Flag, Family] = {
    Flag.CROSSED: Family.QUOTE_SANITY,
    Flag.ZERO_BID: Family.QUOTE_SANITY,
    Flag.WIDE_SPREAD: Family.QUOTE_SANITY,
    Flag.BELOW_INTRINSIC: Family.QUOTE_SANITY,
    Flag.DELTA_BOUNDS: Family.GREEKS_BOUNDS,
    Flag.NEGATIVE_VEGA: Family.GREEKS_BOUNDS,
    Flag.IV_BOUNDS: Family.GREEKS_BOUNDS,
    Flag.IV_ERROR: Family.GREEKS_BOUNDS,
    Flag.DELTA_MONEYNESS: Family.GREEKS_BOUNDS,
    Flag.VERTICAL: Family.STRIKE_ARBITRAGE,
    Flag.BUTTERFLY: Family.STRIKE_ARBITRAGE,
    Flag.PARITY_FORWARD: Family.PARITY,
    Flag.CARRY_BAND: Family.PARITY,
    Flag.STALE_QUOTE: Family.STALENESS,
    Flag.UNDERLYING_MISMATCH: Family.STALENESS,
    Flag.CALENDAR: Family.CALENDAR_ARBITRAGE,
    Flag.INCOMPLETE_BARS: Family.COVERAGE,
    Flag.NO_INTRADAY: Family.RECONCILIATION,
    Flag.EOD_MISMATCH: Family.RECONCILIATION,
}


def family_flags(family: Family) -> list[Flag]:
    return [flag for flag, owner in FLAG_FAMILY.items() if owner == family]


def describe_flags(value: int) -> list[str]:
    """The names of the bits set in ``value``, e.g. ``["crossed", "wide_spread"]``."""
    return [flag.name.lower() for flag in Flag if value & flag]
