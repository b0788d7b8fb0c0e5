"""What ThetaTerminal answers to a request: routing, parameters, status codes and bodies.

HTTP-agnostic: :meth:`Terminal.answer` takes a path and query parameters and returns an
:class:`Answer` (status, headers, and the body as bytes or as a generator of streamed pieces).
The server in ``server.py`` adds concurrency, faults and the wire. Paths, columns, status codes
and units come from ``core/thetadata/vendor.py``; error bodies are the vendor name and a sentence
(``NO_DATA: ...``) for v3, and the JSON envelope with ``error_type`` for v2.
"""

from __future__ import annotations

import datetime as dt
import http
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np
import pyarrow as pa

from spx_dagster.core import calendar
from spx_dagster.core.thetadata.vendor import (
    API_PREFIX,
    ENDPOINTS,
    HEALTH_DISCONNECTED_TEXT,
    HEALTH_PATHS,
    HEALTH_READY_TEXT,
    INTERVALS,
    INTRADAY_END,
    INTRADAY_START,
    LIST_CONTRACTS_COLUMNS,
    LIST_CONTRACTS_PATH,
    LIST_CONTRACTS_TIER,
    LIST_EXPIRATIONS_COLUMNS,
    LIST_EXPIRATIONS_PATH,
    LIST_STRIKES_COLUMNS,
    LIST_STRIKES_PATH,
    RIGHT_CODE_TO_V3_PARAM,
    RIGHT_CODE_TO_V3_WIRE,
    STATUS_CODES,
    TIER_HISTORY_START,
    V2_ALL_EXPIRATIONS,
    V2_LIST_CONTRACTS_PATH,
    V2_LIST_EXPIRATIONS_PATH,
    V2_LIST_FORMATS,
    V2_LIST_STRIKES_PATH,
    Endpoint,
    Tier,
    tier_allows,
)
from spx_dagster.simulator import anomalies, generate
from spx_dagster.simulator.listing import CHAINS, DATA_START, Expiration, listing_for
from spx_dagster.simulator.render import (
    CSV_LINE_END,
    STRIKE_DECIMALS,
    Block,
    ContractGroup,
    Renderer,
    fixed_text,
    v2_error_body,
    v2_list_body,
    v2_strike_ints,
    v3_contract_text,
)

CODE = {s.name: s.code for s in STATUS_CODES.values()}
BLOCK_ROWS = 40_000  # rows generated and sent per chunk (~6 MB of greeks CSV)
DEFAULT_MAX_ROWS = 25_000_000  # larger requests get LARGE_REQUEST (570), as the terminal's do
DEFAULT_V2_PAGE_ROWS = 250_000  # v2 answers are paged past this many ticks
FORMATS = ("csv", "ndjson", "json")
V3_RIGHTS = {param: code for code, param in RIGHT_CODE_TO_V3_PARAM.items()}
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "json": "application/json",
    "v2": "application/json",
    "text": "text/plain; charset=utf-8",
}


class TerminalError(Exception):
    """An answer other than success: the vendor status ``name`` and what went wrong."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.status = CODE[name]


@dataclass
class Answer:
    """One answer: a small ``body`` or streamed ``pieces`` (header first, then row blocks)."""

    status: int
    content_type: str
    body: bytes = b""
    pieces: Iterator[bytes | pa.Buffer] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0


@dataclass(frozen=True)
class BodyFaults:
    """Faults that change what is rendered (the server handles the wire-level ones)."""

    extra_column: bool = False
    malformed_row: bool = False


def _date(text: str | None, name: str) -> dt.date:
    if not text:
        raise TerminalError("INVALID_PARAMS", f"missing parameter {name} (YYYYMMDD)")
    value = text.strip()
    try:
        if len(value) == 8 and value.isdigit():
            return dt.datetime.strptime(value, "%Y%m%d").date()
        return dt.date.fromisoformat(value)
    except ValueError:
        raise TerminalError(
            "INVALID_PARAMS", f"{name}={value!r} is not a date (use YYYYMMDD)"
        ) from None


def _time(text: str | None, default: dt.time, name: str) -> int:
    """Milliseconds after midnight of ``HH:MM:SS[.fff]``."""
    if not text:
        value = default
    else:
        try:
            value = dt.time.fromisoformat(text.strip())
        except ValueError:
            raise TerminalError(
                "INVALID_PARAMS", f"{name}={text!r} is not a time of day (HH:MM:SS)"
            ) from None
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000


def _interval_times(interval_ms: int, start_ms: int, end_ms: int) -> np.ndarray:
    if end_ms < start_ms:
        raise TerminalError("INVALID_PARAMS", "end_time is before start_time")
    return np.arange(start_ms, end_ms + 1, interval_ms, dtype=np.int64)


class Terminal:
    """A simulated ThetaTerminal of one API generation.

    Args:
        api_version: ``v3`` or ``v2``.
        chain: ``full``, ``small`` or ``tiny`` (``listing.CHAINS``).
        seed: Seed of the market and every random draw.
        today: The terminal's "now": later sessions have no data, later listings do not exist.
        tier: Subscription tier: endpoints and history beyond it answer PERMISSION (471).
        max_rows: Requests over this many rows answer LARGE_REQUEST (570).
        v2_page_rows: v2 answers are paged past this many ticks.
    """

    def __init__(
        self,
        *,
        api_version: str = "v3",
        chain: str = "full",
        seed: int = 0,
        today: dt.date | None = None,
        tier: Tier | str = Tier.PRO,
        max_rows: int = DEFAULT_MAX_ROWS,
        v2_page_rows: int = DEFAULT_V2_PAGE_ROWS,
    ) -> None:
        if api_version not in API_PREFIX:
            raise ValueError(
                f"api_version {api_version!r} is not one ThetaTerminal speaks: use "
                + " or ".join(API_PREFIX)
            )
        if chain not in CHAINS:
            raise ValueError(f"chain {chain!r} is unknown: use one of {', '.join(CHAINS)}")
        self.api_version = api_version
        self.prefix = API_PREFIX[api_version]
        self.seed = int(seed)
        self.today = today or calendar.now_et().date()
        self.tier = Tier(tier)
        self.max_rows = max_rows
        self.v2_page_rows = v2_page_rows
        self.listing = listing_for(chain, self.seed, self.today)
        self.market = self.listing.market
        self.chain = chain
        self.anomalies = anomalies.AnomalyBook(self.listing, self.seed)

    # ---- routing ----------------------------------------------------------------------------
    def is_health(self, path: str) -> bool:
        return path == HEALTH_PATHS[self.api_version]

    def is_data(self, path: str) -> bool:
        """Whether ``path`` is one of this terminal's data endpoints (faults apply to those)."""
        return path.startswith(self.prefix + "/") and not self.is_health(path)

    def answer(
        self,
        path: str,
        query: dict[str, str],
        *,
        connected: bool = True,
        base_url: str = "",
        faults: BodyFaults = BodyFaults(),
    ) -> Answer:
        """The terminal's answer to ``GET path?query``."""
        try:
            if self.is_health(path):
                text = HEALTH_READY_TEXT if connected else HEALTH_DISCONNECTED_TEXT
                return Answer(CODE["OK"], CONTENT_TYPES["text"], text.encode())
            other = [p for v, p in API_PREFIX.items() if v != self.api_version]
            if any(path == p or path.startswith(p + "/") for p in other):
                if self.api_version == "v3":
                    raise TerminalError("GONE", f"{path} is a v2 path; this terminal speaks v3")
                raise TerminalError("NO_IMPL", f"no such endpoint {path}")
            if not path.startswith(self.prefix + "/"):
                raise TerminalError("NO_IMPL", f"no such endpoint {path}")
            if not connected:
                raise TerminalError("DISCONNECTED", "not connected to ThetaData (MDDS)")
            sub = path[len(self.prefix) :]
            if self.api_version == "v3":
                return self._v3(sub, query, faults)
            return self._v2(sub, query, faults, base_url + path)
        except TerminalError as error:
            return self.error(error.name, str(error))

    def error(self, name: str, message: str) -> Answer:
        """An error answer with the terminal's body for ``name`` (a vendor status name)."""
        status = CODE[name]
        if self.api_version == "v2":
            return Answer(status, CONTENT_TYPES["v2"], v2_error_body(name, message))
        return Answer(status, CONTENT_TYPES["text"], f"{name}: {message}".encode())

    def http_error(self, status: int) -> Answer:
        """An answer for a status code, by vendor name when it is one, else the HTTP phrase."""
        vendor = STATUS_CODES.get(status)
        if vendor is not None:
            return self.error(vendor.name, vendor.meaning)
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return Answer(status, CONTENT_TYPES["text"], phrase.encode())

    # ---- v3 ---------------------------------------------------------------------------------
    def _v3(self, sub: str, query: dict[str, str], faults: BodyFaults) -> Answer:
        fmt = (query.get("format") or "csv").lower()
        if fmt not in FORMATS:
            raise TerminalError(
                "INVALID_PARAMS", f"format={fmt!r}: use one of {', '.join(FORMATS)}"
            )
        if sub == LIST_EXPIRATIONS_PATH:
            return self._v3_expirations(query, fmt)
        if sub == LIST_STRIKES_PATH:
            return self._v3_strikes(query, fmt)
        if sub == LIST_CONTRACTS_PATH:
            return self._v3_contracts(query, fmt)
        for dataset, endpoint in ENDPOINTS.items():
            if sub == endpoint.path:
                return self._v3_history(dataset, endpoint, query, fmt, faults)
        raise TerminalError("NO_IMPL", f"no such endpoint {self.prefix}{sub}")

    def _roots(self, text: str | None) -> list[str]:
        if not text:
            raise TerminalError("INVALID_PARAMS", "missing parameter symbol")
        roots = [r.strip().upper() for r in text.split(",") if r.strip()]
        known = [r for r in roots if r in self.listing.roots]
        if not known:
            raise TerminalError("NO_DATA", f"no option data for symbol {text}")
        return known

    def _check_session(self, day: dt.date, tier: Tier | None) -> None:
        if tier is not None and not tier_allows(self.tier, tier):
            raise TerminalError(
                "PERMISSION", f"this data needs the {tier.value} subscription or above"
            )
        if day < DATA_START:
            raise TerminalError("NO_DATA", f"no data before {DATA_START.isoformat()}")
        if day < TIER_HISTORY_START[self.tier]:
            raise TerminalError(
                "PERMISSION",
                f"the {self.tier.value} subscription has history from "
                f"{TIER_HISTORY_START[self.tier].isoformat()}",
            )
        if day > self.today:
            raise TerminalError("NO_DATA", f"no data yet for {day.isoformat()}")
        if not calendar.is_session(day):
            raise TerminalError("NO_DATA", f"{day.isoformat()} is not a trading session")

    @staticmethod
    def _small(rows: list[dict], columns, fmt: str) -> Answer:
        """A small answer from row dicts (list endpoints) in any v3 format."""
        if fmt == "csv":
            lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]
            body = (CSV_LINE_END.join(lines) + CSV_LINE_END).encode()
        elif fmt == "ndjson":
            body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        else:
            body = json.dumps({"response": rows}, separators=(",", ":")).encode()
        return Answer(CODE["OK"], CONTENT_TYPES[fmt], body, rows=len(rows))

    def _v3_expirations(self, query: dict[str, str], fmt: str) -> Answer:
        rows = [
            {LIST_EXPIRATIONS_COLUMNS[0]: root, LIST_EXPIRATIONS_COLUMNS[1]: e.date.isoformat()}
            for root in self._roots(query.get("symbol"))
            for e in self.listing.expirations(root)
        ]
        if not rows:
            raise TerminalError("NO_DATA", "no expirations")
        return self._small(rows, LIST_EXPIRATIONS_COLUMNS, fmt)

    def _expiration(self, root: str, text: str | None, name: str = "expiration") -> Expiration:
        day = _date(text, name)
        exp = self.listing.expiration(root, day)
        if exp is None:
            raise TerminalError("NO_DATA", f"{root} has no expiration {day.isoformat()}")
        return exp

    def _v3_strikes(self, query: dict[str, str], fmt: str) -> Answer:
        rows = []
        for root in self._roots(query.get("symbol")):
            exp = self._expiration(root, query.get("expiration"))
            texts = fixed_text(self.listing.strikes(exp), STRIKE_DECIMALS).to_pylist()
            rows += [{LIST_STRIKES_COLUMNS[0]: root, LIST_STRIKES_COLUMNS[1]: t} for t in texts]
        return self._small(rows, LIST_STRIKES_COLUMNS, fmt)

    def _groups(
        self,
        root: str,
        day: dt.date,
        expiration: Expiration | None,
        *,
        rights: tuple[str, ...] = ("C", "P"),
        strike: float | None = None,
    ) -> list[ContractGroup]:
        """The contracts listed on ``day`` (one expiration or all), strike then CALL/PUT."""
        exps = [expiration] if expiration is not None else self.listing.listed_on(root, day)
        groups = []
        for exp in exps:
            if not exp.listed_on(day):
                continue
            strikes = self.listing.strikes(exp, day)
            if strike is not None:
                strikes = strikes[np.isclose(strikes, strike, atol=5e-4)]
            if not len(strikes):
                continue
            groups.append(
                ContractGroup(
                    root,
                    exp.date,
                    np.repeat(strikes, len(rights)),
                    np.tile(np.array(rights), len(strikes)),
                    exp.expires_at,
                )
            )
        return groups

    def _v3_contracts(self, query: dict[str, str], fmt: str) -> Answer:
        day = _date(query.get("date"), "date")
        self._check_session(day, LIST_CONTRACTS_TIER)
        groups = [
            g for root in self._roots(query.get("symbol")) for g in self._groups(root, day, None)
        ]
        if not groups:
            raise TerminalError("NO_DATA", f"no contracts on {day.isoformat()}")
        if fmt != "csv":
            names = LIST_CONTRACTS_COLUMNS
            rows = [
                dict(
                    zip(
                        names,
                        (g.root, g.expiration.isoformat(), float(s), RIGHT_CODE_TO_V3_WIRE[r]),
                        strict=True,
                    )
                )
                for g in groups
                for s, r in zip(g.strikes, g.rights, strict=True)
            ]
            return self._small(rows, names, fmt)
        header = (",".join(LIST_CONTRACTS_COLUMNS) + CSV_LINE_END).encode()

        def pieces():
            yield header
            for g in groups:
                text = v3_contract_text(g, sep=CSV_LINE_END)
                yield text.buffers()[2].slice(0, _end(text))

        return Answer(CODE["OK"], CONTENT_TYPES["csv"], pieces=pieces(), rows=sum(map(len, groups)))

    def _v3_history(
        self, dataset: str, endpoint: Endpoint, query: dict[str, str], fmt: str, faults: BodyFaults
    ) -> Answer:
        roots = self._roots(query.get("symbol"))
        if len(roots) != 1:
            raise TerminalError("INVALID_PARAMS", "history requests take one symbol")
        root = roots[0]
        wildcard = (query.get("expiration") or "").strip() == "*"
        if not query.get("expiration"):
            raise TerminalError("INVALID_PARAMS", "missing parameter expiration")
        if wildcard and not endpoint.expiration_wildcard:
            raise TerminalError(
                "INVALID_PARAMS",
                "expiration=* is not supported by this endpoint: request one expiration at a time",
            )
        if endpoint.date_style == "range":
            first = _date(query.get("start_date"), "start_date")
            last = _date(query.get("end_date") or query.get("start_date"), "end_date")
            if wildcard and last != first:
                raise TerminalError("INVALID_PARAMS", "expiration=* takes one day at a time")
        else:
            first = last = _date(query.get("date"), "date")
        right_param = (query.get("right") or "both").lower()
        if right_param not in V3_RIGHTS:
            raise TerminalError("INVALID_PARAMS", f"right={right_param!r}: use call, put or both")
        rights = ("C", "P") if V3_RIGHTS[right_param] == "both" else (V3_RIGHTS[right_param],)
        strike = self._strike(query.get("strike"))
        times = None
        if endpoint.intraday:
            interval = (query.get("interval") or "1m").lower()
            if interval not in INTERVALS:
                raise TerminalError(
                    "INVALID_PARAMS", f"interval={interval!r}: use one of {', '.join(INTERVALS)}"
                )
            times = _interval_times(
                INTERVALS[interval],
                _time(query.get("start_time"), INTRADAY_START, "start_time"),
                _time(query.get("end_time"), INTRADAY_END, "end_time"),
            )
        expiration = None if wildcard else self._expiration(root, query.get("expiration"))
        days = [d for d in calendar.sessions_between(first, last)] if last > first else [first]
        plans = []
        for day in days:
            try:
                self._check_session(day, endpoint.tier)
            except TerminalError as error:
                if len(days) == 1 or error.name != "NO_DATA":
                    raise
                continue
            groups = self._groups(root, day, expiration, rights=rights, strike=strike)
            if groups:
                plans.append((day, groups))
        if not plans:
            raise TerminalError("NO_DATA", "no data for the request")
        return self._stream(dataset, plans, times, fmt, faults)

    @staticmethod
    def _strike(text: str | None) -> float | None:
        if not text or text.strip() in ("*", "0"):
            return None
        try:
            return float(text)
        except ValueError:
            raise TerminalError("INVALID_PARAMS", f"strike={text!r} is not a number") from None

    # ---- streaming --------------------------------------------------------------------------
    def _stream(
        self,
        dataset: str,
        plans: list[tuple[dt.date, list[ContractGroup]]],
        times: np.ndarray | None,
        fmt: str,
        faults: BodyFaults,
        *,
        v2_next_page: str | None = None,
    ) -> Answer:
        per_contract = len(times) if times is not None else 1
        rows = per_contract * sum(len(g) for _, groups in plans for g in groups)
        if rows > self.max_rows:
            raise TerminalError(
                "LARGE_REQUEST",
                f"{rows} rows: split the request by expiration, right or strike",
            )
        renderers = []
        for day, groups in plans:
            renderer = Renderer(
                fmt, dataset, groups, extra_column=faults.extra_column, v2_next_page=v2_next_page
            )
            renderer.prepare([day])
            renderers.append(renderer)

        def pieces() -> Iterator[bytes | pa.Buffer]:
            yield renderers[0].header()
            corrupt = faults.malformed_row
            for n, ((day, groups), renderer) in enumerate(zip(plans, renderers, strict=True)):
                renderer._started = n > 0
                session = generate.Session(day, self.market.day(day), self.seed)
                for block in self._blocks(dataset, session, groups, times):
                    if corrupt and len(block):
                        block.malformed_row = len(block) // 2
                        corrupt = False
                    yield renderer.render(block)
            yield renderers[0].footer()

        return Answer(
            CODE["OK"],
            CONTENT_TYPES[fmt if fmt in CONTENT_TYPES else "v2"],
            pieces=pieces(),
            rows=rows,
        )

    def _blocks(
        self,
        dataset: str,
        session: generate.Session,
        groups: list[ContractGroup],
        times: np.ndarray | None,
    ) -> Iterator[Block]:
        per_contract = len(times) if times is not None else 1
        per_block = max(1, BLOCK_ROWS // per_contract)
        planted = self.anomalies.planted(session.day)
        offset = 0
        for group in groups:
            for start in range(0, len(group), per_block):
                idx = slice(start, min(start + per_block, len(group)))
                if times is not None:
                    columns = generate.intraday(dataset, session, group, idx, times)
                else:
                    columns = generate.end_of_day(dataset, session, group, idx)
                contract = np.repeat(np.arange(offset + idx.start, offset + idx.stop), per_contract)
                if planted:
                    columns, keep = anomalies.apply(
                        planted, dataset, session, group, idx, times, columns
                    )
                    if keep is not None:
                        contract = contract[keep]
                        columns = {k: np.asarray(v)[keep] for k, v in columns.items()}
                yield Block(contract, columns, session.day)
            offset += len(group)

    # ---- v2 ---------------------------------------------------------------------------------
    def _v2(self, sub: str, query: dict[str, str], faults: BodyFaults, url: str) -> Answer:
        if sub == V2_LIST_EXPIRATIONS_PATH:
            root = self._roots(query.get("root"))[0]
            values = [int(e.date.strftime("%Y%m%d")) for e in self.listing.expirations(root)]
            return self._v2_small("list_expirations", values)
        if sub == V2_LIST_STRIKES_PATH:
            root = self._roots(query.get("root"))[0]
            exp = self._expiration(root, query.get("exp"), "exp")
            return self._v2_small(
                "list_strikes", v2_strike_ints(self.listing.strikes(exp)).tolist()
            )
        if sub == V2_LIST_CONTRACTS_PATH:
            root = self._roots(query.get("root"))[0]
            day = _date(query.get("start_date"), "start_date")
            self._check_session(day, LIST_CONTRACTS_TIER)
            rows = [
                [g.root, int(g.expiration.strftime("%Y%m%d")), int(s), str(r)]
                for g in self._groups(root, day, None)
                for s, r in zip(v2_strike_ints(g.strikes), g.rights, strict=True)
            ]
            if not rows:
                raise TerminalError("NO_DATA", f"no contracts on {day.isoformat()}")
            return self._v2_small("list_contracts", rows)
        for dataset, endpoint in ENDPOINTS.items():
            if endpoint.v2_path is not None and sub == endpoint.v2_path:
                return self._v2_history(dataset, endpoint, query, faults, url)
        raise TerminalError("NO_IMPL", f"no such endpoint {self.prefix}{sub}")

    @staticmethod
    def _v2_small(kind: str, rows: list) -> Answer:
        return Answer(
            CODE["OK"],
            CONTENT_TYPES["v2"],
            v2_list_body(V2_LIST_FORMATS[kind], rows),
            rows=len(rows),
        )

    def _v2_history(
        self, dataset: str, endpoint: Endpoint, query: dict[str, str], faults: BodyFaults, url: str
    ) -> Answer:
        root = self._roots(query.get("root"))[0]
        exp_text = (query.get("exp") or "").strip()
        if not exp_text:
            raise TerminalError("INVALID_PARAMS", "missing parameter exp")
        expiration = (
            None if exp_text == str(V2_ALL_EXPIRATIONS) else self._expiration(root, exp_text, "exp")
        )
        day = _date(query.get("start_date"), "start_date")
        if _date(query.get("end_date") or query.get("start_date"), "end_date") != day:
            raise TerminalError(
                "INVALID_PARAMS", "bulk requests take one day (start_date = end_date)"
            )
        self._check_session(day, endpoint.tier)
        times = None
        if endpoint.intraday:
            ivl = int(query.get("ivl") or INTERVALS["1m"])
            if ivl not in INTERVALS.values():
                raise TerminalError(
                    "INVALID_PARAMS", f"ivl={ivl}: use one of {sorted(INTERVALS.values())} (ms)"
                )
            start, end = _time(None, INTRADAY_START, ""), _time(None, INTRADAY_END, "")
            if (query.get("rth") or "true").lower() == "false":
                start = int(query.get("start_time") or start)
                end = int(query.get("end_time") or end)
            times = _interval_times(ivl, start, end)
        groups = self._groups(root, day, expiration)
        if not groups:
            raise TerminalError("NO_DATA", "no data for the request")
        per_contract = len(times) if times is not None else 1
        per_page = max(1, self.v2_page_rows // per_contract)
        page = int(query.get("page") or 0)
        chosen = _slice_groups(groups, page * per_page, (page + 1) * per_page)
        if not chosen:
            raise TerminalError("NO_PAGE_FOUND", f"page {page} does not exist")
        more = (page + 1) * per_page < sum(len(g) for g in groups)
        next_page = None
        if more:
            base = url.split("?")[0]
            next_page = base + "?" + urlencode({**query, "page": str(page + 1)})
        return self._stream(dataset, [(day, chosen)], times, "v2", faults, v2_next_page=next_page)


def _end(text: pa.Array) -> int:
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)
    return int(offsets[text.offset + len(text)])


def _slice_groups(groups: list[ContractGroup], start: int, stop: int) -> list[ContractGroup]:
    """The contracts ``start:stop`` of the groups taken end to end, regrouped."""
    out: list[ContractGroup] = []
    offset = 0
    for g in groups:
        lo, hi = max(start - offset, 0), min(stop - offset, len(g))
        if lo < hi:
            out.append(
                ContractGroup(g.root, g.expiration, g.strikes[lo:hi], g.rights[lo:hi], g.settles)
            )
        offset += len(g)
    return out
