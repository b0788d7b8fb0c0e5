"""Quality anomalies planted on purpose in otherwise clean answers, and the record of them.

``--anomaly FAMILY[:N]`` (or ``SimulatorServer.add_anomaly``, ``POST /_sim/anomalies``) asks for
N anomalies of a family in every session served. Which rows are hit is decided per session from
the seed, the date and the counts per family only (families are planned in the order of
``FAMILIES``, each from its own seeded draws), never from a request: a wildcard answer, a
per-expiration answer, a v2 page and a 5-minute answer show the same planted rows, and
``records(day)`` lists them. An anomaly changes numbers inside valid rows (or drops whole rows,
for ``coverage``); the wire format is untouched.

Planting reads the clean rows it is about to change (generation is a pure function of a row's
identity, so a one-contract group yields the very values a full answer carries) and skips
candidates where the anomaly would not show (an unquoted contract, a quote too small to flip, an
index that did not move). Intraday anomalies sit on 5-minute marks between 09:35 and 15:30 (runs
end by 15:50), so they show at 1m and 5m intervals and the last bar (16:00) stays clean for
``reconciliation``; two intraday anomalies never share a (root, expiration) at overlapping
minutes. When no candidate fits after ``MAX_DRAWS`` draws, fewer are planted: the record says
what was.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from spx_dagster.core import calendar
from spx_dagster.core.thetadata.vendor import EOD_QUOTES_FROM, INTRADAY_END, INTRADAY_START
from spx_dagster.simulator import generate
from spx_dagster.simulator.listing import Expiration, Listing
from spx_dagster.simulator.render import ContractGroup

FAMILIES: dict[str, str] = {
    "quote_sanity": "crossed: bid and ask swapped (bid > ask) at one minute of one quoted "
    "contract; below_intrinsic: an in-the-money contract's bid and ask moved down (spread kept) "
    "so its mid is below intrinsic value (from underlying_price) by 10 %/year of carry on the "
    "strike, twice the spread and $1",
    "greeks_bounds": "delta_sign: delta's sign flipped (call delta < 0, put delta > 0); "
    "negative_vega: vega negated; iv_range: implied_vol set to 7.5 (outside (0, 5]); each at "
    "one minute of one quoted contract",
    "strike_arbitrage": "vertical: a call's bid and ask raised so its mid exceeds the next lower "
    "strike's call mid by 4 half-spreads; butterfly: a call raised above the chord of its two "
    "neighbours by twice their weighted half-spreads plus $0.10, still below the lower "
    "neighbour; at one minute of one (root, expiration)",
    "calendar_arbitrage": "every contract of one expiration repriced at one minute with its "
    "volatility scaled so its ATM total implied variance is half the previous expiration's",
    "parity": "one near-the-money put's bid and ask raised by 0.2 % of the index (at least $2) "
    "at one minute: its put-call parity forward is that far below the other strikes'",
    "staleness": "one near-the-money contract's bid, ask and sizes frozen for 30-60 minutes while "
    "the index moves",
    "coverage": "one contract's rows dropped for a run of 10-30 minutes (a vendor hole)",
    "reconciliation": "one traded contract's EOD close, bid and ask (eod and greeks_eod) raised "
    "by half the last intraday bar's mid plus twice its spread (at least $1); high follows",
}
MAX_COUNT = 100  # per family and session
MAX_DRAWS = 300  # candidates tried per anomaly before giving up on it

INTRADAY_DATASETS = ("greeks", "quote")
EOD_DATASETS = ("eod", "greeks_eod")
MINUTE_MS = 60_000
OPEN_MS = (INTRADAY_START.hour * 60 + INTRADAY_START.minute) * MINUTE_MS
LAST_BAR_MS = (INTRADAY_END.hour * 60 + INTRADAY_END.minute) * MINUTE_MS
# 5-minute marks 09:35 ... 15:30 where single-minute anomalies sit.
MARKS_MS = OPEN_MS + 5 * MINUTE_MS * np.arange(1, 73)
RUN_END_MS = LAST_BAR_MS - 10 * MINUTE_MS  # runs end by 15:50
CARRY_ALLOWANCE = 0.10  # per year, on the strike: more than any rate the quality checks allow
ACTIONS = ("set", "drop", "reprice")


def parse_anomaly(text: str) -> tuple[str, int]:
    """``FAMILY[:N]`` as (family, N); N defaults to 1.

    Raises:
        ValueError: Unknown family or N not a whole number from 1 to ``MAX_COUNT``.
    """
    family, _, count_text = str(text).strip().partition(":")
    family = family.strip().lower()
    if family not in FAMILIES:
        raise ValueError(
            f"anomaly family {family!r} is unknown: use one of {', '.join(FAMILIES)} "
            "(optionally FAMILY:N)"
        )
    if not count_text:
        return family, 1
    return family, check_count(count_text, family)


def check_count(value: object, family: str = "") -> int:
    """A count of anomalies: a whole number from 1 to ``MAX_COUNT``."""
    try:
        count = int(str(value).strip())
    except ValueError:
        count = 0
    if isinstance(value, float) and not value.is_integer():
        count = 0
    if not 1 <= count <= MAX_COUNT:
        where = f" in {family}:{value}" if family else ""
        raise ValueError(
            f"anomaly count {value!r}{where} is not a whole number from 1 to {MAX_COUNT}: "
            f"write FAMILY:N, e.g. {family or 'parity'}:3"
        )
    return count


def parse_day(value: dt.date | str, what: str = "date") -> dt.date:
    """A session date from ``YYYY-MM-DD`` or ``YYYYMMDD`` (or a date); ValueError names
    ``what`` (``date``, ``FaultRule expiration``, ...)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    text = str(value).strip()
    try:
        if len(text) == 8 and text.isdigit():
            return dt.datetime.strptime(text, "%Y%m%d").date()
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}={value!r} is not a date: use YYYY-MM-DD") from None


@dataclass(frozen=True)
class Planted:
    """One planted anomaly: where it is, which datasets show it and how rows change.

    ``strike``/``right`` None: every contract of the expiration. ``start_ms``/``end_ms``:
    milliseconds after midnight ET of the first and last row hit (None for end-of-day rows).
    ``action`` ``set`` writes ``values`` (column, value) into the rows (columns a dataset does
    not have are skipped), ``drop`` removes the rows, ``reprice`` regenerates them with the
    volatility times ``vol_scale``.
    """

    family: str
    kind: str
    root: str
    expiration: dt.date
    strike: float | None
    right: str | None
    start_ms: int | None
    end_ms: int | None
    datasets: tuple[str, ...]
    detail: str
    action: str = "set"
    values: tuple[tuple[str, float], ...] = ()
    vol_scale: float = 1.0
    footprint: tuple[tuple[str, dt.date], ...] = ()

    def records(self, day: dt.date) -> list[dict]:
        """What ``GET /_sim/anomalies?date=`` lists: one record per dataset."""

        def stamp(ms: int | None) -> str | None:
            if ms is None:
                return None
            moment = dt.datetime.combine(day, dt.time()) + dt.timedelta(milliseconds=ms)
            return moment.isoformat()

        return [
            {
                "family": self.family,
                "kind": self.kind,
                "dataset": dataset,
                "root": self.root,
                "expiration": self.expiration.isoformat(),
                "strike": self.strike,
                "right": self.right,
                "timestamp": stamp(self.start_ms),
                "end_timestamp": stamp(self.end_ms),
                "detail": self.detail,
            }
            for dataset in self.datasets
        ]


# --------------------------------------------------------------------------------------------
# Applying a plan to generated rows
# --------------------------------------------------------------------------------------------
def apply(
    planted: Iterable[Planted],
    dataset: str,
    session: generate.Session,
    group: ContractGroup,
    idx: slice,
    times: np.ndarray | None,
    columns: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The block's columns with the anomalies that hit it, and the rows to keep (None: all).

    Rows are contract-major (``generate.intraday``): contract ``c``'s row at time ``t`` is
    ``c * len(times) + t``.
    """
    hits = [
        p
        for p in planted
        if dataset in p.datasets and p.root == group.root and p.expiration == group.expiration
    ]
    if not hits:
        return columns, None
    strikes, rights = group.strikes[idx], group.rights[idx]
    columns = dict(columns)
    keep = None
    for p in hits:
        if p.strike is None:
            contracts = np.ones(len(strikes), dtype=bool)
        else:
            contracts = np.isclose(strikes, p.strike, atol=5e-4) & (rights == p.right)
        if not contracts.any():
            continue
        if times is None:
            rows = contracts
            at = None
        else:
            at = (times >= p.start_ms) & (times <= p.end_ms)
            if not at.any():
                continue
            rows = (contracts[:, None] & at[None, :]).reshape(-1)
        if p.action == "drop":
            keep = ~rows if keep is None else keep & ~rows
        elif p.action == "set":
            for name, value in p.values:
                if name in columns:
                    column = np.array(columns[name], copy=True)
                    column[rows] = value
                    columns[name] = column
        else:  # reprice: every contract of the expiration in this block at those times
            fresh = generate.intraday(
                dataset, session, group, idx, times[at], vol_scale=p.vol_scale
            )
            for name, values in fresh.items():
                column = np.array(columns[name], copy=True)
                column[rows] = values
                columns[name] = column
    return columns, keep


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def _tick(price: float) -> float:
    return 0.05 if price < 3.0 else 0.10


def _round_up(value: float, step: float) -> float:
    return round(float(np.ceil(value / step - 1e-9) * step), 2)


def _round(value: float, step: float) -> float:
    return round(float(np.round(value / step) * step), 2)


@dataclass
class _Context:
    """What the planners of one session draw from."""

    day: dt.date
    session: generate.Session
    chains: list[tuple[Expiration, np.ndarray]]  # every listed expiration and its strikes
    rng: np.random.Generator
    taken: list[tuple[tuple[str, dt.date], int, int]]  # intraday footprints
    eod_taken: set[tuple[str, dt.date, float, str]]

    def expiration(self, *, min_strikes: int = 1) -> tuple[Expiration, np.ndarray] | None:
        fit = [c for c in self.chains if len(c[1]) >= min_strikes]
        return fit[self.rng.integers(len(fit))] if fit else None

    def mark(self) -> int:
        return int(MARKS_MS[self.rng.integers(len(MARKS_MS))])

    def right(self) -> str:
        return "C" if self.rng.random() < 0.5 else "P"

    def rows(
        self, exp: Expiration, strikes, rights, ms, dataset: str = "greeks"
    ) -> dict[str, np.ndarray]:
        """Clean rows (contracts × times) of contracts of ``exp``, plus ``years`` to expiry."""
        strikes = np.atleast_1d(np.asarray(strikes, dtype=np.float64))
        rights = np.atleast_1d(np.asarray(rights))
        if len(rights) == 1 and len(strikes) > 1:
            rights = np.repeat(rights, len(strikes))
        group = ContractGroup(exp.root, exp.date, strikes, rights, exp.expires_at)
        ms = np.atleast_1d(np.asarray(ms, dtype=np.int64))
        whole = slice(0, len(group))
        cols = generate.intraday(dataset, self.session, group, whole, ms)
        out = {k: v.reshape(len(group), len(ms)) for k, v in cols.items()}
        out["years"] = generate.price(self.session, group, whole, ms // 1000).years
        return out

    def free(self, keys: Iterable[tuple[str, dt.date]], start: int, end: int) -> bool:
        keys = set(keys)
        return not any(k in keys and s <= end and start <= e for k, s, e in self.taken)


def _quoted(rows: dict, i: int = 0, t: int = 0) -> bool:
    """A two-sided, uncrossed quote."""
    return bool(rows["bid"][i, t] > 0 and rows["ask"][i, t] > rows["bid"][i, t])


def _single(
    ctx: _Context,
    family: str,
    kind: str,
    exp: Expiration,
    strike: float,
    right: str,
    ms: int,
    detail: str,
    values: dict[str, float],
    datasets=INTRADAY_DATASETS,
) -> Planted:
    return Planted(
        family,
        kind,
        exp.root,
        exp.date,
        float(strike),
        right,
        ms,
        ms,
        tuple(datasets),
        detail,
        values=tuple(values.items()),
        footprint=((exp.root, exp.date),),
    )


def _contract(ctx: _Context):
    chosen = ctx.expiration()
    if chosen is None:
        return None
    exp, strikes = chosen
    return exp, float(strikes[ctx.rng.integers(len(strikes))]), ctx.right()


def _quoted_contract(ctx: _Context):
    """A random contract quoted at a random mark: (expiration, strike, right, ms, row) or None."""
    picked = _contract(ctx)
    if picked is None:
        return None
    exp, strike, right = picked
    ms = ctx.mark()
    row = ctx.rows(exp, strike, right, ms)
    return (exp, strike, right, ms, row) if _quoted(row) else None


def _plan_quote_sanity(ctx: _Context, kind: str) -> Planted | None:
    picked = _quoted_contract(ctx)
    if picked is None:
        return None
    exp, strike, right, ms, row = picked
    bid, ask = float(row["bid"][0, 0]), float(row["ask"][0, 0])
    if kind == "crossed":
        detail = f"bid {ask:.2f} > ask {bid:.2f} (swapped)"
        return _single(
            ctx, "quote_sanity", kind, exp, strike, right, ms, detail, {"bid": ask, "ask": bid}
        )
    spot = float(row["underlying_price"][0, 0])
    intrinsic = max(spot - strike, 0.0) if right == "C" else max(strike - spot, 0.0)
    spread = ask - bid
    shortfall = CARRY_ALLOWANCE * float(row["years"][0, 0]) * strike + 2 * spread + 1.0
    new_bid = _round(intrinsic - shortfall - spread / 2, 0.10)
    if intrinsic < 5.0 or new_bid < 0.10:
        return None
    new_ask = round(new_bid + spread, 2)
    detail = (
        f"mid {(new_bid + new_ask) / 2:.2f} below intrinsic {intrinsic:.2f} "
        f"(underlying {spot:.2f}) by more than the spread {spread:.2f}"
    )
    return _single(
        ctx, "quote_sanity", kind, exp, strike, right, ms, detail, {"bid": new_bid, "ask": new_ask}
    )


def _plan_greeks_bounds(ctx: _Context, kind: str) -> Planted | None:
    picked = _quoted_contract(ctx)
    if picked is None:
        return None
    exp, strike, right, ms, row = picked
    delta, vega = float(row["delta"][0, 0]), float(row["vega"][0, 0])
    if kind == "delta_sign":
        if abs(delta) < 0.05:
            return None
        values = {"delta": -delta}
        detail = f"{'call' if right == 'C' else 'put'} delta {-delta:.4f} (sign flipped)"
    elif kind == "negative_vega":
        if vega < 0.01:
            return None
        values, detail = {"vega": -vega}, f"vega {-vega:.4f} < 0 (negated)"
    else:
        values, detail = {"implied_vol": 7.5}, "implied_vol 7.5000 outside (0, 5]"
    return _single(
        ctx, "greeks_bounds", kind, exp, strike, right, ms, detail, values, datasets=("greeks",)
    )


def _plan_strike_arbitrage(ctx: _Context, kind: str) -> Planted | None:
    chosen = ctx.expiration(min_strikes=3)
    if chosen is None:
        return None
    exp, strikes = chosen
    j = int(ctx.rng.integers(1, len(strikes) - 1))
    ms = ctx.mark()
    k = strikes[j - 1 : j + 2]
    rows = ctx.rows(exp, k, "C", ms)
    if not all(_quoted(rows, i) for i in range(3)):
        return None
    bid, ask = rows["bid"][:, 0], rows["ask"][:, 0]
    mid, half = (bid + ask) / 2, (ask - bid) / 2
    if kind == "vertical":
        target = mid[0] + 4 * max(half[0], half[1])
        reference = f"the {k[0]:g} call's {mid[0]:.2f} (vertical)"
    else:
        w = (k[2] - k[1]) / (k[2] - k[0])
        chord = w * mid[0] + (1 - w) * mid[2]
        target = chord + 2 * (w * half[0] + half[1] + (1 - w) * half[2]) + 0.10
        if target > mid[0] - half[0] - half[1] - 0.10:  # would break the vertical too
            return None
        reference = f"the chord {chord:.2f} of the {k[0]:g} and {k[2]:g} calls (butterfly)"
    shift = _round_up(target - mid[1], 0.10)
    if shift <= 0:
        return None
    new_bid, new_ask = round(bid[1] + shift, 2), round(ask[1] + shift, 2)
    return _single(
        ctx,
        "strike_arbitrage",
        kind,
        exp,
        k[1],
        "C",
        ms,
        f"call mid {(new_bid + new_ask) / 2:.2f} above {reference}",
        {"bid": new_bid, "ask": new_ask},
    )


def _atm(ctx: _Context, exp: Expiration, strikes: np.ndarray, ms: int) -> tuple[float, float]:
    """(implied vol, years) of the call nearest the money of ``exp`` at ``ms``."""
    spot = ctx.session.market.index_at(np.array([ms // 1000]))[0]
    strike = strikes[np.argmin(np.abs(strikes - spot))]
    row = ctx.rows(exp, strike, "C", ms)
    return float(row["implied_vol"][0, 0]), float(row["years"][0, 0])


def _plan_calendar_arbitrage(ctx: _Context, kind: str) -> Planted | None:
    chosen = ctx.expiration()
    if chosen is None:
        return None
    exp, strikes = chosen
    ms = ctx.mark()
    vol, years = _atm(ctx, exp, strikes, ms)
    earlier = [(e, s) for e, s in ctx.chains if e.expires_at < exp.expires_at and e.date >= ctx.day]
    if not earlier:
        return None
    same_root = [c for c in earlier if c[0].root == exp.root]
    prev, prev_strikes = max(same_root or earlier, key=lambda c: c[0].expires_at)
    prev_vol, prev_years = _atm(ctx, prev, prev_strikes, ms)
    if prev_years <= 0 or years <= prev_years:
        return None
    scale = float(np.sqrt(0.5 * prev_vol**2 * prev_years / (vol**2 * years)))
    if not 0.2 <= scale <= 0.9:
        return None
    detail = (
        f"IV x{scale:.3f}: ATM total variance {(vol * scale) ** 2 * years:.6f} below "
        f"{prev_vol**2 * prev_years:.6f} of {prev.root} {prev.date.isoformat()}"
    )
    return Planted(
        "calendar_arbitrage",
        kind,
        exp.root,
        exp.date,
        None,
        None,
        ms,
        ms,
        INTRADAY_DATASETS,
        detail,
        action="reprice",
        vol_scale=scale,
        footprint=((exp.root, exp.date), (prev.root, prev.date)),
    )


def _plan_parity(ctx: _Context, kind: str) -> Planted | None:
    chosen = ctx.expiration(min_strikes=3)
    if chosen is None:
        return None
    exp, strikes = chosen
    ms = ctx.mark()
    spot = float(ctx.session.market.index_at(np.array([ms // 1000]))[0])
    near = strikes[np.argsort(np.abs(strikes - spot))[:3]]
    strike = float(near[ctx.rng.integers(len(near))])
    rows = ctx.rows(exp, [strike, strike], np.array(["C", "P"]), ms)
    if not (_quoted(rows, 0) and _quoted(rows, 1)):
        return None
    shift = _round_up(max(2.0, 0.002 * spot), 0.10)
    mid = (rows["bid"][:, 0] + rows["ask"][:, 0]) / 2
    growth = float(np.exp(ctx.session.market.rate * rows["years"][0, 0]))
    forward = strike + (mid[0] - mid[1]) * growth
    detail = (
        f"put raised {shift:.2f}: parity forward {forward - shift * growth:.2f} "
        f"instead of {forward:.2f}"
    )
    bid, ask = float(rows["bid"][1, 0]), float(rows["ask"][1, 0])
    values = {"bid": round(bid + shift, 2), "ask": round(ask + shift, 2)}
    return _single(ctx, "parity", kind, exp, strike, "P", ms, detail, values)


def _plan_staleness(ctx: _Context, kind: str) -> Planted | None:
    picked = _contract(ctx)
    if picked is None:
        return None
    exp, strike, right = picked
    minutes = int(ctx.rng.integers(30, 61))
    latest = (RUN_END_MS - minutes * MINUTE_MS - OPEN_MS) // (5 * MINUTE_MS)
    start = OPEN_MS + 5 * MINUTE_MS * int(ctx.rng.integers(1, latest + 1))
    end = start + minutes * MINUTE_MS
    ms = np.arange(start, end + 1, MINUTE_MS)
    rows = ctx.rows(exp, strike, right, ms)
    delta = abs(float(rows["delta"][0, 0]))
    if not _quoted(rows) or not 0.25 <= delta <= 0.75:
        return None
    bid, ask = float(rows["bid"][0, 0]), float(rows["ask"][0, 0])
    moved = (rows["bid"][0] != bid) | (rows["ask"][0] != ask)
    if moved.sum() < len(ms) // 2:
        return None
    sizes = ctx.rows(exp, strike, right, start, dataset="quote")
    index = rows["underlying_price"][0]
    detail = (
        f"bid/ask {bid:.2f}/{ask:.2f} frozen {minutes} minutes while the index moved "
        f"{index.min():.2f}-{index.max():.2f}"
    )
    values = {
        "bid": bid,
        "ask": ask,
        "bid_size": int(sizes["bid_size"][0, 0]),
        "ask_size": int(sizes["ask_size"][0, 0]),
    }
    return Planted(
        "staleness",
        kind,
        exp.root,
        exp.date,
        strike,
        right,
        start,
        end,
        INTRADAY_DATASETS,
        detail,
        values=tuple(values.items()),
        footprint=((exp.root, exp.date),),
    )


def _plan_coverage(ctx: _Context, kind: str) -> Planted | None:
    picked = _contract(ctx)
    if picked is None:
        return None
    exp, strike, right = picked
    minutes = int(ctx.rng.integers(10, 31))
    latest = (RUN_END_MS - minutes * MINUTE_MS - OPEN_MS) // (5 * MINUTE_MS)
    start = OPEN_MS + 5 * MINUTE_MS * int(ctx.rng.integers(1, latest + 1))
    end = start + (minutes - 1) * MINUTE_MS
    first = (dt.datetime.min + dt.timedelta(milliseconds=start)).strftime("%H:%M")
    last = (dt.datetime.min + dt.timedelta(milliseconds=end)).strftime("%H:%M")
    detail = f"no rows {first}-{last} ({minutes} minutes)"
    return Planted(
        "coverage",
        kind,
        exp.root,
        exp.date,
        strike,
        right,
        start,
        end,
        INTRADAY_DATASETS,
        detail,
        action="drop",
        footprint=((exp.root, exp.date),),
    )


def _plan_reconciliation(ctx: _Context, kind: str) -> Planted | None:
    picked = _contract(ctx)
    if picked is None:
        return None
    exp, strike, right = picked
    if (exp.root, exp.date, strike, right) in ctx.eod_taken:
        return None
    group = ContractGroup(exp.root, exp.date, np.array([strike]), np.array([right]), exp.expires_at)
    eod = generate.end_of_day("eod", ctx.session, group, slice(0, 1))
    last = ctx.rows(exp, strike, right, LAST_BAR_MS)
    quotes = ctx.day >= EOD_QUOTES_FROM
    if eod["volume"][0] <= 0 or eod["close"][0] < 0.5 or not _quoted(last):
        return None
    if quotes and not (eod["bid"][0] > 0 and eod["ask"][0] > eod["bid"][0]):
        return None
    bar_bid, bar_ask = float(last["bid"][0, 0]), float(last["ask"][0, 0])
    bar_mid, bar_spread = (bar_bid + bar_ask) / 2, bar_ask - bar_bid
    shift = _round_up(max(1.0, 0.5 * bar_mid + 2 * bar_spread), 0.10)
    close = round(float(eod["close"][0]) + shift, 2)
    values = {"close": close, "high": max(float(eod["high"][0]), close)}
    detail = f"close {close:.2f}"
    if quotes:
        values.update(
            bid=round(float(eod["bid"][0]) + shift, 2), ask=round(float(eod["ask"][0]) + shift, 2)
        )
        detail += f", bid/ask {values['bid']:.2f}/{values['ask']:.2f}"
    detail += f" vs the last intraday bar {bar_bid:.2f}/{bar_ask:.2f} (16:00)"
    ctx.eod_taken.add((exp.root, exp.date, strike, right))
    return Planted(
        "reconciliation",
        kind,
        exp.root,
        exp.date,
        strike,
        right,
        None,
        None,
        EOD_DATASETS,
        detail,
        values=tuple(values.items()),
    )


# family -> (kinds, planner); kinds alternate from a seeded offset, so N >= 2 shows each.
PLANNERS: dict[str, tuple[tuple[str, ...], Callable[[_Context, str], Planted | None]]] = {
    "quote_sanity": (("crossed", "below_intrinsic"), _plan_quote_sanity),
    "greeks_bounds": (("delta_sign", "negative_vega", "iv_range"), _plan_greeks_bounds),
    "strike_arbitrage": (("vertical", "butterfly"), _plan_strike_arbitrage),
    "calendar_arbitrage": (("total_variance",), _plan_calendar_arbitrage),
    "parity": (("forward",), _plan_parity),
    "staleness": (("frozen_quote",), _plan_staleness),
    "coverage": (("missing_minutes",), _plan_coverage),
    "reconciliation": (("eod_vs_intraday",), _plan_reconciliation),
}
assert tuple(PLANNERS) == tuple(FAMILIES)


def plan_session(
    listing: Listing, seed: int, day: dt.date, counts: dict[str, int]
) -> tuple[Planted, ...]:
    """The anomalies of session ``day`` for ``counts`` per family (pure: same inputs, same plan)."""
    if not counts or not calendar.is_session(day):
        return ()
    chains = [
        (exp, listing.strikes(exp, day))
        for root in listing.roots
        for exp in listing.listed_on(root, day)
    ]
    chains = [(e, s) for e, s in chains if len(s)]
    if not chains:
        return ()
    session = generate.Session(day, listing.market.day(day), seed)
    planted: list[Planted] = []
    taken: list[tuple[tuple[str, dt.date], int, int]] = []
    eod_taken: set = set()
    for number, (family, (kinds, planner)) in enumerate(PLANNERS.items()):
        rng = np.random.default_rng([seed, day.toordinal(), number, 13])
        ctx = _Context(day, session, chains, rng, taken, eod_taken)
        offset = int(rng.integers(len(kinds)))
        for n in range(counts.get(family, 0)):
            kind = kinds[(offset + n) % len(kinds)]
            for _ in range(MAX_DRAWS):
                candidate = planner(ctx, kind)
                if candidate is None:
                    continue
                if candidate.start_ms is not None:
                    if not ctx.free(candidate.footprint, candidate.start_ms, candidate.end_ms):
                        continue
                    for key in candidate.footprint:
                        taken.append((key, candidate.start_ms, candidate.end_ms))
                planted.append(candidate)
                break
    return tuple(planted)


class AnomalyBook:
    """The anomalies asked for (a count per family) and each session's plan (cached).

    Args:
        listing: The chain the simulator serves.
        seed: The simulator's seed.
    """

    def __init__(self, listing: Listing, seed: int) -> None:
        self.listing = listing
        self.seed = int(seed)
        self._counts: dict[str, int] = {}
        self._plans: OrderedDict[tuple, tuple[Planted, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, family: str, count: int = 1) -> dict[str, int]:
        """Ask for ``count`` more anomalies of ``family`` per session; returns the counts."""
        family, _ = parse_anomaly(family)
        count = check_count(count, family)
        with self._lock:
            self._counts[family] = self._counts.get(family, 0) + count
            return dict(self._counts)

    def clear(self) -> int:
        """Plant nothing from now on; returns how many were asked for per session."""
        with self._lock:
            total = sum(self._counts.values())
            self._counts.clear()
            return total

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def planted(self, day: dt.date) -> tuple[Planted, ...]:
        """The anomalies of session ``day`` (empty when none are asked for)."""
        with self._lock:
            counts = dict(self._counts)
            key = (day, tuple(sorted(counts.items())))
            cached = self._plans.get(key)
        if not counts:
            return ()
        if cached is not None:
            return cached
        plan = plan_session(self.listing, self.seed, day, counts)
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > 64:
                self._plans.popitem(last=False)
        return plan

    def records(self, day: dt.date) -> list[dict]:
        """One record per planted anomaly and dataset, for ``GET /_sim/anomalies?date=``."""
        return [record for p in self.planted(day) for record in p.records(day)]
