"""All implemented families over one table: the ``flags`` column and each family's result."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from spx_dagster.core.quality import calendar_arbitrage
from spx_dagster.core.quality.families import Family, FamilyResult
from spx_dagster.core.quality.flags import Flag
from spx_dagster.core.quality.parity import parity
from spx_dagster.core.quality.row_checks import greeks_bounds, quote_sanity
from spx_dagster.core.quality.rows import converted_once
from spx_dagster.core.quality.staleness import staleness
from spx_dagster.core.quality.strike_arbitrage import strike_arbitrage
from spx_dagster.core.quality.thresholds import Thresholds

# The families each dataset gets (strike arbitrage needs one minute of many strikes).
FAMILIES_OF: dict[str, tuple[Family, ...]] = {
    "greeks": (
        Family.QUOTE_SANITY,
        Family.GREEKS_BOUNDS,
        Family.STRIKE_ARBITRAGE,
        Family.PARITY,
        Family.STALENESS,
    ),
    "quote": (Family.QUOTE_SANITY, Family.STRIKE_ARBITRAGE, Family.PARITY),
    "eod": (Family.QUOTE_SANITY,),
    "greeks_eod": (Family.QUOTE_SANITY, Family.GREEKS_BOUNDS),
    "open_interest": (),
}


# Each family's check: (table, dataset, session, thresholds, flags to set in place) → result.
CHECKS: dict[Family, Callable[..., FamilyResult]] = {
    Family.QUOTE_SANITY: quote_sanity,
    Family.GREEKS_BOUNDS: lambda table, dataset, _session, limits, flags: greeks_bounds(
        table, dataset, limits, flags
    ),
    Family.STRIKE_ARBITRAGE: lambda table, dataset, _session, limits, flags: strike_arbitrage(
        table, dataset, limits, flags
    ),
    Family.PARITY: lambda table, dataset, _session, limits, flags: parity(
        table, dataset, limits, flags
    ),
    Family.STALENESS: lambda table, dataset, _session, limits, flags: staleness(
        table, dataset, limits, flags
    ),
}


@dataclass
class Evaluation:
    flags: pa.Array  # uint32, one per row of the table
    families: dict[Family, FamilyResult]


def evaluate(
    table: pa.Table, dataset: str, session: dt.date, limits: Thresholds | None = None
) -> Evaluation:
    """Every family that applies to ``dataset`` over ``table`` (rows in any order)."""
    limits = limits or Thresholds()
    flags = np.zeros(table.num_rows, dtype=np.uint32)
    results: dict[Family, FamilyResult] = {}
    with converted_once(table):
        for family in FAMILIES_OF.get(dataset, ()):
            results[family] = CHECKS[family](table, dataset, session, limits, flags)
    return Evaluation(pa.array(flags, type=pa.uint32()), results)


@dataclass(frozen=True)
class SessionFamily:
    """A family that compares parts (expirations) of a session, from small per-part summaries.

    How the pipeline calls it, so that memory stays bounded by one part plus the summaries:

    1. for each part of a dataset in ``datasets``, with the same table (same row order) that
       ``evaluate`` flags: ``summary = summarize_part(table, limits)``, kept under the part's key;
    2. once every part of the session is validated: ``result, rows = check_session(summaries,
       limits)``; ``result`` joins the session's families, and for each part key
       ``flags[rows[key]] |= flag`` on that part's flags before it is published (so a part's
       flags are final only after the whole session was summarised).
    """

    datasets: tuple[str, ...]
    flag: Flag
    summarize_part: Callable[[pa.Table, Thresholds], pa.Table]
    check_session: Callable[
        [Mapping[Hashable, pa.Table], Thresholds],
        tuple[FamilyResult, dict[Hashable, np.ndarray]],
    ]


SESSION_FAMILIES: dict[Family, SessionFamily] = {
    Family.CALENDAR_ARBITRAGE: SessionFamily(
        datasets=("greeks",),
        flag=Flag.CALENDAR,
        summarize_part=calendar_arbitrage.summarize_part,
        check_session=calendar_arbitrage.check_session,
    ),
}
