"""The option chain of one session at one minute, from its committed ``greeks`` files.

Default minute: 15 minutes before the close, i.e. 15:45 ET, 12:45 ET on an early-close day (the
time of Cboe's end-of-day snapshots). Reads only the files of that session's manifest (one
manifest read, no listing of the others), filtered on the one stamp; the published files have
one row group per expiration, so ``expiration`` prunes whole row groups. Open interest (the
session's ``open_interest`` file, when committed) is joined per contract.

Rows are sorted by expiration, root, strike and right. ``mid`` is the midpoint of bid and ask,
null where the contract was not quoted (ask 0, as the vendor sends unquoted minutes).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from spx_dagster.core.calendar import (
    ET,
    DateError,
    intraday_end,
    parse_session,
    session_close,
)
from spx_dagster.core.catalog import parquet_source
from spx_dagster.core.storage import STATUS_NO_DATA, ManifestError, load_manifest
from spx_dagster.core.thetadata.vendor import INTRADAY_START, ROOTS, SPX_OPTIONS_CLOSE
from spx_dagster.read.errors import ChainError, NotPublished

if TYPE_CHECKING:
    from spx_dagster.core.storage import Manifest
    from spx_dagster.read.history import History

# Minutes before the close that the default chain is taken at (Cboe's snapshot: 15:45 ET).
SNAPSHOT_BEFORE_CLOSE = dt.timedelta(minutes=15)
CHAIN_COLUMNS = (
    "root",
    "expiration",
    "dte",
    "strike",
    "right",
    "timestamp",
    "bid",
    "ask",
    "mid",
    "implied_vol",
    "iv_error",
    "delta",
    "theta",
    "vega",
    "rho",
    "underlying_price",
    "open_interest",
)
_MINUTE = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class ChainRequest:
    """A checked chain request: the session, the stamp and the contracts asked for."""

    session: dt.date
    at: dt.time
    roots: tuple[str, ...]
    expirations: tuple[dt.date, ...] | None  # None: every expiration

    @property
    def stamp(self) -> dt.datetime:
        return dt.datetime.combine(self.session, self.at, tzinfo=ET)


def default_minute(session: dt.date) -> dt.time:
    """15 minutes before the session's close: 15:45 ET, 12:45 ET on an early close."""
    close = dt.datetime.combine(session, session_close(session))
    return (close - SNAPSHOT_BEFORE_CLOSE).time()


def parse_minute(value: dt.time | str) -> dt.time:
    """``HH:MM`` (ET) or a ``datetime.time``; ChainError names a bad one."""
    if isinstance(value, dt.time):
        return value.replace(second=0, microsecond=0)
    match = _MINUTE.match(str(value).strip())
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return dt.time(hour, minute)
    raise ChainError(f"--at {value!r} is not a time of day; use HH:MM in ET, e.g. 15:45")


def _session(date: dt.date | str) -> dt.date:
    try:
        return parse_session(date.isoformat() if isinstance(date, dt.date) else str(date))
    except DateError as error:
        raise ChainError(str(error)) from None


def _manifest(history: History, session: dt.date) -> Manifest:
    try:
        manifest = load_manifest(history.output_dir, session)
    except ManifestError as error:
        raise NotPublished(str(error)) from None
    if manifest is None:
        raise NotPublished(
            f"{session} is not published in {history.output_dir}: publish it with "
            f"`spx-data process {session}` (`spx-data list` shows what is published)"
        )
    if manifest.status == STATUS_NO_DATA:
        raise NotPublished(
            f"ThetaData had no data for {session} (its manifest records no_data): there is no "
            f"chain to show; `spx-data process {session} --force` asks again"
        )
    entry = manifest.datasets.get("greeks")
    if entry is None or not entry.files:
        held = ", ".join(n for n, e in manifest.datasets.items() if e.files) or "none"
        raise NotPublished(
            f"{session} has no greeks published (datasets with files: {held}); add greeks to "
            f"processing.datasets and run `spx-data process {session} --force`"
        )
    return manifest


def resolve(
    manifest: Manifest,
    *,
    at: dt.time | str | None,
    root: str | None,
    expiration: dt.date | str | None,
    dte: int | None,
) -> ChainRequest:
    """Check a request against the session's calendar and its manifest's chain."""
    session = manifest.session
    minute = default_minute(session) if at is None else parse_minute(at)
    last = intraday_end(session, SPX_OPTIONS_CLOSE)
    if not INTRADAY_START <= minute <= last:
        raise ChainError(
            f"--at {minute:%H:%M} is outside the session of {session}, which runs "
            f"{INTRADAY_START:%H:%M}-{last:%H:%M} ET; pick a minute in it (default "
            f"{default_minute(session):%H:%M})"
        )
    if root is not None and root.upper() not in ROOTS:
        raise ChainError(f"--root {root!r} is not an SPX root; use one of {', '.join(ROOTS)}")
    roots = tuple(r for r in (manifest.roots or ROOTS) if root is None or r == root.upper())
    if not roots:
        raise ChainError(
            f"{session} has no {root.upper()} chain published; roots: {', '.join(manifest.roots)}"
        )
    if expiration is not None and dte is not None:
        raise ChainError("give --expiration or --dte, not both")
    if dte is not None and dte < 0:
        raise ChainError(f"--dte {dte} is negative; days to expiration count from 0 (0DTE)")
    listed = sorted({e for r in roots for e in manifest.expirations.get(r, [])})
    wanted: tuple[dt.date, ...] | None = None
    if expiration is not None:
        try:
            day = (
                expiration if isinstance(expiration, dt.date) else dt.date.fromisoformat(expiration)
            )
        except ValueError:
            raise ChainError(
                f"--expiration {expiration!r} is not a date; use YYYY-MM-DD, e.g. {session}"
            ) from None
        if listed and day not in listed:
            raise ChainError(
                f"{day} is not an expiration of the {'/'.join(roots)} chain of {session}; "
                f"expirations: {', '.join(map(str, listed))}"
            )
        wanted = (day,)
    elif dte is not None:
        day = session + dt.timedelta(days=dte)
        if listed and day not in listed:
            dtes = ", ".join(f"{(e - session).days} ({e})" for e in listed)
            raise ChainError(
                f"no {'/'.join(roots)} expiration {dte} days after {session} (that is {day}); "
                f"days to expiration in the chain: {dtes}"
            )
        wanted = (day,)
    return ChainRequest(session, minute, roots, wanted)


def chain_query(request: ChainRequest, greeks: list, open_interest: list) -> str:
    """The SQL of a chain over the given files.

    The values are literals (checked dates, a root of ``ROOTS``, the stamp), so DuckDB prunes
    row groups on their statistics: one expiration reads one row group per root.
    """
    oi = (
        f'LEFT JOIN (SELECT root, expiration, strike, "right", open_interest FROM '
        f'{parquet_source(open_interest)}) oi USING (root, expiration, strike, "right")'
        if open_interest
        else ""
    )
    oi_column = "oi.open_interest" if open_interest else "CAST(NULL AS BIGINT)"
    roots = ", ".join(f"'{r}'" for r in request.roots)
    where = f"g.timestamp = TIMESTAMPTZ '{request.stamp.isoformat()}' AND g.root IN ({roots})"
    if request.expirations is not None:
        days = ", ".join(f"DATE '{d.isoformat()}'" for d in request.expirations)
        where += f" AND g.expiration IN ({days})"
    return f"""
        SELECT g.root, g.expiration,
               CAST(g.expiration - DATE '{request.session.isoformat()}' AS INTEGER) AS dte,
               g.strike, g."right", g.timestamp, g.bid, g.ask,
               CASE WHEN g.ask > 0 THEN (g.bid + g.ask) / 2 END AS mid,
               g.implied_vol, g.iv_error, g.delta, g.theta, g.vega, g.rho, g.underlying_price,
               {oi_column} AS open_interest
        FROM {parquet_source(greeks)} g {oi}
        WHERE {where}
        ORDER BY g.expiration, g.root, g.strike, g."right"
    """


def chain_table(
    history: History,
    date: dt.date | str,
    *,
    at: dt.time | str | None = None,
    root: str | None = None,
    expiration: dt.date | str | None = None,
    dte: int | None = None,
) -> pa.Table:
    """The chain of ``date`` at ``at`` (ET) as Arrow, one row per contract (see module doc)."""
    session = _session(date)

    def run() -> pa.Table:
        manifest = _manifest(history, session)
        request = resolve(manifest, at=at, root=root, expiration=expiration, dte=dte)
        files = {
            name: [history.output_dir / f.path for f in entry.files]
            for name, entry in manifest.datasets.items()
        }
        sql = chain_query(request, files["greeks"], files.get("open_interest", []))
        table = history.query_files(sql)
        if table.num_rows == 0:
            raise ChainError(
                f"no {'/'.join(request.roots)} greeks at {request.at:%H:%M} ET on {session}"
                + (
                    f" for {', '.join(map(str, request.expirations))}"
                    if request.expirations
                    else ""
                )
                + "; the published minutes are on processing.interval within "
                f"{INTRADAY_START:%H:%M}-{intraday_end(session, SPX_OPTIONS_CLOSE):%H:%M} ET: "
                f"pick one (default {default_minute(session):%H:%M})"
            )
        return table

    return history.retrying(run, snapshot=False)
