"""The datasets spx-data publishes and the typed Arrow schema of each.

The client converts the wire format (see ``thetadata/vendor.py``) into these schemas; validation,
storage and the catalog read them from here. The session date is not a column in the files: it is
the hive partition ``date=YYYY-MM-DD`` in the path.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from spx_dagster.core.thetadata.vendor import ENDPOINTS, EXCHANGE_TIMEZONE

# Bump when a published file's columns or types change; it is written into every file's
# key-value metadata and every manifest.
SCHEMA_VERSION = 2  # 2: the flags column of the quality checks (issue 13)

TIMESTAMP = pa.timestamp("ms", tz=EXCHANGE_TIMEZONE)

CONTRACT_FIELDS = [
    pa.field("root", pa.string(), nullable=False),
    pa.field("expiration", pa.date32(), nullable=False),
    pa.field("strike", pa.float64(), nullable=False),  # dollars
    pa.field("right", pa.string(), nullable=False),  # "C" or "P"
]


def _f(name: str, typ: pa.DataType) -> pa.Field:
    return pa.field(name, typ)


_QUOTE_SIDE = [
    _f("bid_size", pa.int32()),
    _f("bid_exchange", pa.int16()),
    _f("bid", pa.float64()),
    _f("bid_condition", pa.int16()),
    _f("ask_size", pa.int32()),
    _f("ask_exchange", pa.int16()),
    _f("ask", pa.float64()),
    _f("ask_condition", pa.int16()),
]
_OHLCV = [
    _f("open", pa.float64()),
    _f("high", pa.float64()),
    _f("low", pa.float64()),
    _f("close", pa.float64()),
    _f("volume", pa.int64()),
    _f("count", pa.int64()),
]
_FIRST_ORDER = [
    _f("delta", pa.float64()),
    _f("theta", pa.float64()),
    _f("vega", pa.float64()),
    _f("rho", pa.float64()),
    _f("epsilon", pa.float64()),
    _f("lambda", pa.float64()),
]
_HIGHER_ORDER = [
    _f(n, pa.float64())
    for n in (
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
    )
]
_IV_UNDERLYING = [
    _f("implied_vol", pa.float64()),
    _f("iv_error", pa.float64()),
    _f("underlying_timestamp", TIMESTAMP),
    _f("underlying_price", pa.float64()),
]

SCHEMAS: dict[str, pa.Schema] = {
    "greeks": pa.schema(
        [
            *CONTRACT_FIELDS,
            _f("timestamp", TIMESTAMP),
            _f("bid", pa.float64()),
            _f("ask", pa.float64()),
            *_FIRST_ORDER,
            *_IV_UNDERLYING,
        ]
    ),
    "eod": pa.schema(
        [
            *CONTRACT_FIELDS,
            _f("created", TIMESTAMP),
            _f("last_trade", TIMESTAMP),
            *_OHLCV,
            *_QUOTE_SIDE,
        ]
    ),
    "open_interest": pa.schema(
        [*CONTRACT_FIELDS, _f("timestamp", TIMESTAMP), _f("open_interest", pa.int64())]
    ),
    "quote": pa.schema([*CONTRACT_FIELDS, _f("timestamp", TIMESTAMP), *_QUOTE_SIDE]),
    "greeks_eod": pa.schema(
        [
            *CONTRACT_FIELDS,
            _f("timestamp", TIMESTAMP),
            *_OHLCV,
            *_QUOTE_SIDE,
            *_FIRST_ORDER,
            *_HIGHER_ORDER,
            *_IV_UNDERLYING,
        ]
    ),
}


# The quality checks' bitmask (``core.quality.Flag``): 0 when no check doubts the row. Added by
# validation to every dataset with quotes; not on the wire, so not in ``Dataset.schema``.
FLAGS_FIELD = pa.field("flags", pa.uint32(), nullable=False)


@dataclass(frozen=True)
class Dataset:
    """A dataset: ``schema`` is what the terminal sends (and validation checks), and
    ``published_schema`` what its published files hold (``flags`` added when ``flagged``)."""

    name: str
    schema: pa.Schema
    intraday: bool
    default: bool  # processed unless processing.datasets says otherwise
    sort_keys: tuple[str, ...]
    description: str
    flagged: bool = True

    @property
    def published_schema(self) -> pa.Schema:
        return self.schema.append(FLAGS_FIELD) if self.flagged else self.schema


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "greeks",
            SCHEMAS["greeks"],
            intraday=True,
            default=True,
            sort_keys=("root", "expiration", "strike", "right", "timestamp"),
            description="first-order greeks with bid/ask, IV and underlying at the interval",
        ),
        Dataset(
            "eod",
            SCHEMAS["eod"],
            intraday=False,
            default=True,
            sort_keys=("root", "expiration", "strike", "right"),
            description="end-of-day report per contract (17:15 ET)",
        ),
        Dataset(
            "open_interest",
            SCHEMAS["open_interest"],
            intraday=False,
            default=True,
            sort_keys=("root", "expiration", "strike", "right"),
            description="open interest stamped ~06:30 ET (previous session's close)",
            flagged=False,
        ),
        Dataset(
            "quote",
            SCHEMAS["quote"],
            intraday=True,
            default=False,
            sort_keys=("root", "expiration", "strike", "right", "timestamp"),
            description="NBBO at the interval (opt-in)",
        ),
        Dataset(
            "greeks_eod",
            SCHEMAS["greeks_eod"],
            intraday=False,
            default=False,
            sort_keys=("root", "expiration", "strike", "right"),
            description="end-of-day greeks of all orders (opt-in)",
        ),
    )
}

DEFAULT_DATASETS: tuple[str, ...] = tuple(n for n, d in DATASETS.items() if d.default)

assert set(DATASETS) == set(ENDPOINTS), "every dataset has exactly one vendor endpoint"
