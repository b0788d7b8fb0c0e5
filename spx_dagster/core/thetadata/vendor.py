"""ThetaTerminal facts in one place: status codes, endpoints, wire columns, tiers, units.

Everything here is taken from ThetaData's public documentation as summarised in
``shared/THETADATA.md``; nothing else in the code base may hard-code a status code, an endpoint
path, a wire column name or a unit conversion. The simulator serves what this module describes,
and ``spx_dagster_tests/core/test_vendor_samples.py`` checks it against the verbatim public samples
so that a mistake here cannot hide behind the client and the simulator agreeing with each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

# ---------------------------------------------------------------------------------------------
# Connection defaults
# ---------------------------------------------------------------------------------------------
DEFAULT_V3_BASE_URL = "http://127.0.0.1:25503"
DEFAULT_V2_BASE_URL = "http://127.0.0.1:25510"
API_PREFIX = {"v3": "/v3", "v2": "/v2"}
HEALTH_PATH_V3 = "/v3/terminal/mdds/status"
# The exact readiness text is uncertain in the public docs; CONNECTED is the documented example.
HEALTH_READY_TEXT = "CONNECTED"
# What the status path says while the terminal has lost ThetaData (one of the documented answers).
HEALTH_DISCONNECTED_TEXT = "DISCONNECTED"
# The legacy terminal's readiness probe (same answers: CONNECTED/UNVERIFIED/DISCONNECTED/ERROR).
HEALTH_PATH_V2 = "/v2/system/mdds/status"
HEALTH_PATHS = {"v3": HEALTH_PATH_V3, "v2": HEALTH_PATH_V2}
# The jar a user starts for each generation (named in "no terminal listening" messages).
TERMINAL_JAR = {"v3": "ThetaTerminalv3.jar", "v2": "ThetaTerminal.jar"}

ROOTS: tuple[str, ...] = ("SPX", "SPXW")
INDEX_SYMBOL = "SPX"


# ---------------------------------------------------------------------------------------------
# Status codes
# ---------------------------------------------------------------------------------------------
class Behaviour(StrEnum):
    """What the client does about a status code."""

    OK = "ok"
    NO_DATA = "no_data"  # an answer: nothing exists for the request
    RETRY = "retry"  # transient: back off and retry
    WAIT_UPSTREAM = "wait_upstream"  # terminal lost ThetaData: poll status, then retry
    SPLIT = "split"  # request too large: split it
    REISSUE = "reissue"  # v2 page expired: re-issue the original request
    FAIL = "fail"  # permanent: fail at once with advice


@dataclass(frozen=True)
class StatusCode:
    code: int
    name: str
    meaning: str
    behaviour: Behaviour
    advice: str


STATUS_CODES: dict[int, StatusCode] = {
    s.code: s
    for s in (
        StatusCode(200, "OK", "success", Behaviour.OK, ""),
        StatusCode(
            404,
            "NO_IMPL",
            "unknown path or outdated terminal",
            Behaviour.FAIL,
            "check thetadata.base_url and thetadata.api_version, and update ThetaTerminal",
        ),
        StatusCode(
            410,
            "GONE",
            "v2 path on a v3 terminal",
            Behaviour.FAIL,
            "this terminal speaks v3; set thetadata.api_version v3 "
            "(spx-data config set thetadata.api_version v3)",
        ),
        StatusCode(
            429,
            "OS_LIMIT",
            "throttled, or the terminal's request queue overflowed",
            Behaviour.RETRY,
            "lower thetadata.concurrency to your subscription tier's limit",
        ),
        StatusCode(
            470, "GENERAL", "general error", Behaviour.RETRY, "retried a few times before failing"
        ),
        StatusCode(
            471,
            "PERMISSION",
            "subscription lacks this data",
            Behaviour.FAIL,
            "upgrade the ThetaData subscription or drop the dataset from processing.datasets",
        ),
        StatusCode(
            472, "NO_DATA", "nothing for that request", Behaviour.NO_DATA, "recorded as no data"
        ),
        StatusCode(
            473,
            "INVALID_PARAMS",
            "bad request parameters (or an outdated terminal)",
            Behaviour.FAIL,
            "update ThetaTerminal; if it is current, report the request",
        ),
        StatusCode(
            474,
            "DISCONNECTED",
            "terminal lost its connection to ThetaData",
            Behaviour.WAIT_UPSTREAM,
            "the terminal reconnects by itself; check its console if this persists",
        ),
        StatusCode(
            475,
            "TERMINAL_PARSE",
            "terminal could not parse the request",
            Behaviour.FAIL,
            "update ThetaTerminal; if it is current, report the request",
        ),
        StatusCode(
            476,
            "WRONG_IP",
            "requests switched between localhost and 127.0.0.1",
            Behaviour.FAIL,
            "use the same host the terminal was first reached with in thetadata.base_url "
            "(127.0.0.1 or localhost, not both)",
        ),
        StatusCode(
            477,
            "NO_PAGE_FOUND",
            "v2 page expired",
            Behaviour.REISSUE,
            "the original request is re-issued",
        ),
        StatusCode(
            478,
            "INVALID_SESSION_ID",
            "more than one terminal is running for this account",
            Behaviour.FAIL,
            "stop the other ThetaTerminal instances for this account",
        ),
        StatusCode(
            570,
            "LARGE_REQUEST",
            "request too large",
            Behaviour.SPLIT,
            "the request is split by right and strike range",
        ),
        StatusCode(
            571,
            "SERVER_STARTING",
            "terminal (re)starting",
            Behaviour.RETRY,
            "wait for ThetaTerminal to finish starting",
        ),
        StatusCode(
            572,
            "UNCAUGHT_ERROR",
            "terminal bug",
            Behaviour.FAIL,
            "report the exact request (logged) to ThetaData",
        ),
    )
}

# Codes that are not ThetaTerminal's own but come from HTTP stacks in between.
GENERIC_RETRYABLE_HTTP = frozenset({500, 502, 503, 504})


def status_behaviour(code: int) -> Behaviour:
    """How the client treats ``code``; unknown 5xx retry, other unknown codes fail."""
    if code in STATUS_CODES:
        return STATUS_CODES[code].behaviour
    if code in GENERIC_RETRYABLE_HTTP or 500 <= code < 600:
        return Behaviour.RETRY
    return Behaviour.FAIL


# ---------------------------------------------------------------------------------------------
# Subscription tiers
# ---------------------------------------------------------------------------------------------
class Tier(StrEnum):
    FREE = "free"
    VALUE = "value"
    STANDARD = "standard"
    PRO = "pro"


TIER_ORDER = (Tier.FREE, Tier.VALUE, Tier.STANDARD, Tier.PRO)

# Outstanding (concurrent) requests the terminal serves per tier; extra ones queue.
TIER_CONCURRENCY: dict[Tier, int] = {Tier.FREE: 1, Tier.VALUE: 2, Tier.STANDARD: 4, Tier.PRO: 8}

# First date with data per tier (third-party encoding; approximate).
TIER_HISTORY_START: dict[Tier, dt.date] = {
    Tier.FREE: dt.date(2023, 6, 1),
    Tier.VALUE: dt.date(2020, 1, 1),
    Tier.STANDARD: dt.date(2016, 1, 1),
    Tier.PRO: dt.date(2012, 6, 1),
}

# The terminal's request queue: default 16, configurable up to 128; past it, 429.
TERMINAL_QUEUE_DEFAULT = 16
TERMINAL_QUEUE_MAX = 128


def tier_allows(tier: Tier, required: Tier) -> bool:
    return TIER_ORDER.index(tier) >= TIER_ORDER.index(required)


# ---------------------------------------------------------------------------------------------
# Endpoints and wire columns (v3 CSV headers, in the order the terminal sends them)
# ---------------------------------------------------------------------------------------------
CONTRACT_COLUMNS = ("symbol", "expiration", "strike", "right")

EOD_COLUMNS = (
    *CONTRACT_COLUMNS,
    "created",
    "last_trade",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "count",
    "bid_size",
    "bid_exchange",
    "bid",
    "bid_condition",
    "ask_size",
    "ask_exchange",
    "ask",
    "ask_condition",
)
OPEN_INTEREST_COLUMNS = (*CONTRACT_COLUMNS, "timestamp", "open_interest")
QUOTE_COLUMNS = (
    *CONTRACT_COLUMNS,
    "timestamp",
    "bid_size",
    "bid_exchange",
    "bid",
    "bid_condition",
    "ask_size",
    "ask_exchange",
    "ask",
    "ask_condition",
)
GREEKS_FIRST_ORDER_COLUMNS = (
    *CONTRACT_COLUMNS,
    "timestamp",
    "bid",
    "ask",
    "delta",
    "theta",
    "vega",
    "rho",
    "epsilon",
    "lambda",
    "implied_vol",
    "iv_error",
    "underlying_timestamp",
    "underlying_price",
)
GREEKS_EOD_COLUMNS = (
    *CONTRACT_COLUMNS,
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "count",
    "bid_size",
    "bid_exchange",
    "bid",
    "bid_condition",
    "ask_size",
    "ask_exchange",
    "ask",
    "ask_condition",
    "delta",
    "theta",
    "vega",
    "rho",
    "epsilon",
    "lambda",
    "gamma",
    "vanna",
    "charm",
    "vomma",
    "veta",
    "vera",
    "speed",
    "zomma",
    "color",
    "ultima",
    "d1",
    "d2",
    "dual_delta",
    "dual_gamma",
    "implied_vol",
    "iv_error",
    "underlying_timestamp",
    "underlying_price",
)
LIST_EXPIRATIONS_COLUMNS = ("symbol", "expiration")
LIST_STRIKES_COLUMNS = ("symbol", "strike")
LIST_CONTRACTS_COLUMNS = CONTRACT_COLUMNS

# Columns holding ISO timestamps (America/New_York, no offset, variable fraction).
TIMESTAMP_COLUMNS = frozenset({"timestamp", "created", "last_trade", "underlying_timestamp"})


@dataclass(frozen=True)
class Endpoint:
    """One v3 history endpoint a dataset is fetched from."""

    dataset: str
    path: str  # below the /v3 prefix
    columns: tuple[str, ...]
    tier: Tier
    intraday: bool  # takes `interval` and returns one row per interval per contract
    date_style: str  # "date" (date=D) or "range" (start_date=D&end_date=D)
    expiration_wildcard: bool  # accepts expiration=* for the whole chain
    v2_path: str | None  # the legacy bulk path the v2 adapter calls (None: v3 only)


ENDPOINTS: dict[str, Endpoint] = {
    e.dataset: e
    for e in (
        Endpoint(
            "greeks",
            "/option/history/greeks/first_order",
            GREEKS_FIRST_ORDER_COLUMNS,
            Tier.STANDARD,
            intraday=True,
            date_style="date",
            expiration_wildcard=False,
            v2_path="/bulk_hist/option/greeks",
        ),
        Endpoint(
            "eod",
            "/option/history/eod",
            EOD_COLUMNS,
            Tier.FREE,
            intraday=False,
            date_style="range",
            expiration_wildcard=True,
            v2_path="/bulk_hist/option/eod",
        ),
        Endpoint(
            "open_interest",
            "/option/history/open_interest",
            OPEN_INTEREST_COLUMNS,
            Tier.VALUE,
            intraday=False,
            date_style="date",
            expiration_wildcard=True,
            v2_path="/bulk_hist/option/open_interest",
        ),
        Endpoint(
            "quote",
            "/option/history/quote",
            QUOTE_COLUMNS,
            Tier.VALUE,
            intraday=True,
            date_style="date",
            expiration_wildcard=True,
            v2_path="/bulk_hist/option/quote",
        ),
        Endpoint(
            "greeks_eod",
            "/option/history/greeks/eod",
            GREEKS_EOD_COLUMNS,
            Tier.STANDARD,
            intraday=False,
            date_style="range",
            expiration_wildcard=True,
            v2_path=None,
        ),
    )
}

LIST_EXPIRATIONS_PATH = "/option/list/expirations"
LIST_STRIKES_PATH = "/option/list/strikes"
LIST_CONTRACTS_PATH = "/option/list/contracts/quote"
LIST_CONTRACTS_TIER = Tier.VALUE
INDEX_EOD_PATH = "/index/history/eod"
V2_LIST_EXPIRATIONS_PATH = "/list/expirations"
V2_LIST_STRIKES_PATH = "/list/strikes"
# v2 bulk requests cover one day and one expiration (exp=0: all, on some endpoints).
V2_ALL_EXPIRATIONS = 0
# v2 lists the contracts of a day one root at a time (start_date=D&root=R).
V2_LIST_CONTRACTS_PATH = "/list/contracts/option/quote"
# v2 rows carry times as ms after midnight ET plus a `date` int (YYYYMMDD); which v2 time column
# becomes which of our timestamp columns, per dataset. Other v2 columns share v3's names.
V2_DATE_COLUMN = "date"
V2_TIME_COLUMNS: dict[str, dict[str, str]] = {
    "greeks": {"ms_of_day": "timestamp", "ms_of_day2": "underlying_timestamp"},
    "eod": {"ms_of_day": "created", "ms_of_day2": "last_trade"},
    "open_interest": {"ms_of_day": "timestamp"},
    "quote": {"ms_of_day": "timestamp"},
}
# v2 contract fields (in a row's `contract` object or as columns of flat rows).
V2_CONTRACT_COLUMNS = ("root", "expiration", "strike", "right")
# `header.format` of the v2 list answers (expirations and strikes are bare values).
V2_LIST_FORMATS: dict[str, tuple[str, ...]] = {
    "list_expirations": (V2_DATE_COLUMN,),
    "list_strikes": ("strike",),
    "list_contracts": V2_CONTRACT_COLUMNS,
}


def v2_tick_columns(dataset: str) -> tuple[str, ...]:
    """`header.format` of a v2 bulk answer: v3's columns without the contract ones, timestamps
    as their v2 ms columns, then `date` (e.g. greeks: ms_of_day, bid, ..., ms_of_day2,
    underlying_price, date)."""
    v2_for_v3 = {v3: v2 for v2, v3 in V2_TIME_COLUMNS.get(dataset, {}).items()}
    columns = [v2_for_v3.get(c, c) for c in ENDPOINTS[dataset].columns if c not in CONTRACT_COLUMNS]
    return (*columns, V2_DATE_COLUMN)


# ---------------------------------------------------------------------------------------------
# Units and encodings
# ---------------------------------------------------------------------------------------------
RIGHT_WIRE_TO_CODE = {"CALL": "C", "PUT": "P", "C": "C", "P": "P"}
RIGHT_CODE_TO_V3_PARAM = {"C": "call", "P": "put", "both": "both"}
RIGHT_CODE_TO_V3_WIRE = {"C": "CALL", "P": "PUT"}  # how v3 answers spell rights
V2_STRIKE_PER_DOLLAR = 1000  # v2 strikes are integers in 1/10 cent: $5900 -> 5900000
V2_NULL_PAGE = "null"  # v2 header.next_page when there is no next page
NEXT_PAGE_HEADER = "Next-Page"
RETRY_AFTER_HEADER = "Retry-After"  # honoured on 429 when present
CSV_LINE_END = "\r\n"

# Intraday sessions: defaults 09:30:00-16:00:00 ET inclusive (391 one-minute rows per contract).
EXCHANGE_TIMEZONE = "America/New_York"
INTRADAY_START = dt.time(9, 30)
INTRADAY_END = dt.time(16, 0)
# SPX index options trade until 16:15; set end_time=16:15:00 to get those minutes.
SPX_OPTIONS_CLOSE = dt.time(16, 15)
# EOD reports are generated at 17:15 ET.
EOD_REPORT_TIME = dt.time(17, 15)
# Open interest is stamped ~06:30 ET and is the previous session's close.
OPEN_INTEREST_STAMP = dt.time(6, 30)
# Bid/ask in EOD may be missing before this date.
EOD_QUOTES_FROM = dt.date(2023, 12, 1)
# iv_error takes this value on interval rows where nothing was quoted.
IV_ERROR_UNQUOTED = 100.0
# Greeks: rho and vega are per 100 (divide by 100 for per-unit values).
GREEKS_PER_100 = frozenset({"rho", "vega"})

INTERVALS: dict[str, int] = {  # interval name -> milliseconds
    "1s": 1_000,
    "5s": 5_000,
    "10s": 10_000,
    "15s": 15_000,
    "30s": 30_000,
    "1m": 60_000,
    "5m": 300_000,
    "10m": 600_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
}


def intervals_per_session(
    interval: str, *, start: dt.time = INTRADAY_START, end: dt.time = INTRADAY_END
) -> int:
    """Rows per contract for an intraday request: both ends inclusive (1m -> 391)."""
    ms = INTERVALS[interval]
    span_ms = (
        (end.hour * 3600 + end.minute * 60 + end.second)
        - (start.hour * 3600 + start.minute * 60 + start.second)
    ) * 1000
    return span_ms // ms + 1
