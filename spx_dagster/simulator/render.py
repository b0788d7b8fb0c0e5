"""Rows of numbers to wire bytes (v3 CSV/NDJSON/JSON, v2 JSON ticks) without a string per value.

Every piece of text a row is made of is a *token*: an integer's digits, a fixed-decimal
fraction with the separator that follows it (``.0141,``), a clock time (``09:30:00``), a
millisecond fraction trimmed like the terminal's (``.71``), or a per-answer token such as a
contract's ``SPXW,2024-11-08,5900.000,CALL,``. A block of rows becomes an ``(rows, tokens)``
matrix of token ids computed with numpy, and one ``pyarrow.compute.take`` over the vocabulary
gathers the bytes in row order: the answer's body is the data buffer of the result, sent as is.
Measured: ~235 MB of greeks CSV per CPU-second (generation and rendering together), about twice
the rate the client parses it.

Number formats follow the public samples: strikes 3 decimals, prices 2, greeks and IV 4,
``underlying_price`` 2 (3 in greeks EOD), integers plain, timestamps ISO without offset with a
trimmed millisecond fraction (``17:15:28.71``), rights ``CALL``/``PUT``, CRLF line ends.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.datasets import SCHEMAS
from spx_dagster.core.thetadata.vendor import (
    CONTRACT_COLUMNS,
    CSV_LINE_END,
    ENDPOINTS,
    RIGHT_CODE_TO_V3_WIRE,
    TIMESTAMP_COLUMNS,
    V2_CONTRACT_COLUMNS,
    V2_DATE_COLUMN,
    V2_STRIKE_PER_DOLLAR,
    V2_TIME_COLUMNS,
    v2_tick_columns,
)

INT_LIMIT = 100_000  # integers (and integer parts) the vocabulary spells; values are clamped
SEPARATORS = (",", CSV_LINE_END, "")
COMMA, LINE_END, NONE = SEPARATORS
PRICE_COLUMNS = frozenset({"bid", "ask", "open", "high", "low", "close"})
STRIKE_DECIMALS = 3
GREEK_DECIMALS = 4
# The drifted column the "extra_column" fault adds, and where.
EXTRA_COLUMN = "condition_flags"
EXTRA_COLUMN_AFTER = "timestamp"
GARBAGE = "#ERR"  # what the "malformed_row" fault writes instead of a number


def decimals(dataset: str, column: str) -> int:
    """Decimal places of a float wire column (from the public samples)."""
    if column in PRICE_COLUMNS:
        return 2
    if column == "underlying_price":
        return 3 if dataset == "greeks_eod" else 2
    if column == "strike":
        return STRIKE_DECIMALS
    return GREEK_DECIMALS


# --------------------------------------------------------------------------------------------
# The static vocabulary
# --------------------------------------------------------------------------------------------
def _ms_fraction(ms: int) -> str:
    return "" if ms == 0 else f".{ms:03d}".rstrip("0")


class Vocabulary:
    """Token texts shared by every answer: integers, fractions, clock times."""

    def __init__(self) -> None:
        parts: list[pa.Array] = []
        size = 0

        def add(array: pa.Array) -> int:
            nonlocal size
            base = size
            parts.append(array.cast(pa.string()))
            size += len(array)
            return base

        self.int_base = add(pa.array([str(i) for i in range(-INT_LIMIT, INT_LIMIT + 1)]))
        self.int_zero = self.int_base + INT_LIMIT
        self.neg_zero = add(pa.array(["-0"]))
        sep_base = add(pa.array(list(SEPARATORS)))
        self.sep = {s: sep_base + i for i, s in enumerate(SEPARATORS)}
        self.frac: dict[tuple[int, str], int] = {}
        for places in range(1, 5):
            for s in SEPARATORS:
                texts = [f".{i:0{places}d}{s}" for i in range(10**places)]
                self.frac[places, s] = add(pa.array(texts))
        self.hms = add(
            pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)])
        )
        self.ms_frac = {
            s: add(pa.array([_ms_fraction(m) + s for m in range(1000)])) for s in SEPARATORS
        }
        self.pad3 = {s: add(pa.array([f"{m:03d}{s}" for m in range(1000)])) for s in SEPARATORS}
        self.size = size
        self.array = pa.concat_arrays(parts)


_vocabulary: Vocabulary | None = None
_vocabulary_lock = threading.Lock()


def vocabulary() -> Vocabulary:
    """The process-wide vocabulary (built on first use, ~0.3 s)."""
    global _vocabulary
    with _vocabulary_lock:
        if _vocabulary is None:
            _vocabulary = Vocabulary()
        return _vocabulary


class Tokens:
    """The vocabulary plus the tokens of one answer (contracts, dates, literals)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self._extra: list[pa.Array] = []
        self._size = vocab.size
        self._dictionary: pa.Array | None = None
        self._literals: dict[str, int] = {}

    def add(self, texts: pa.Array | Sequence[str]) -> np.ndarray:
        """Ids of new tokens (in order); add them before rendering to avoid a rebuild."""
        self._dictionary = None  # rebuilt on the next gather (late literals are rare)
        array = texts if isinstance(texts, pa.Array) else pa.array(list(texts), pa.string())
        base = self._size
        self._extra.append(array.cast(pa.string()))
        self._size += len(array)
        return np.arange(base, self._size, dtype=np.int64)

    def literal(self, text: str) -> int:
        if text not in self._literals:
            self._literals[text] = int(self.add([text])[0])
        return self._literals[text]

    def dictionary(self) -> pa.Array:
        if self._dictionary is None:
            self._dictionary = pa.concat_arrays([self.vocab.array, *self._extra])
        return self._dictionary

    def gather(self, ids: np.ndarray) -> pa.Buffer:
        """The bytes of the tokens ``ids`` (row-major matrix or flat), concatenated."""
        flat = np.ascontiguousarray(ids, dtype=np.int32).ravel()
        taken = pc.take(self.dictionary(), pa.array(flat))
        offsets = np.frombuffer(taken.buffers()[1], dtype=np.int32)
        start, end = offsets[taken.offset], offsets[taken.offset + len(taken)]
        data = taken.buffers()[2]
        if data is None:
            return pa.py_buffer(b"")
        return data.slice(int(start), int(end - start))


# --------------------------------------------------------------------------------------------
# Numbers to token ids
# --------------------------------------------------------------------------------------------
def fixed_ids(vocab: Vocabulary, values: np.ndarray, places: int, sep: str):
    """(integer-part ids, fraction+separator ids) of ``values`` at ``places`` decimals."""
    scale = 10**places
    scaled = np.rint(np.nan_to_num(np.asarray(values, dtype=np.float64)) * scale)
    scaled = np.clip(scaled, -INT_LIMIT * scale, INT_LIMIT * scale).astype(np.int64)
    negative = scaled < 0
    whole, frac = np.divmod(np.abs(scaled), scale)
    int_ids = vocab.int_zero + np.where(negative, -whole, whole)
    int_ids[negative & (whole == 0)] = vocab.neg_zero
    return int_ids, vocab.frac[places, sep] + frac


def int_ids(vocab: Vocabulary, values: np.ndarray, sep: str):
    """(leading digits ids, last three digits+separator ids) of integers up to 1e9.

    Small values (below 1000, negatives included) are one integer token plus the separator.
    """
    v = np.clip(np.asarray(values, dtype=np.int64), -INT_LIMIT, INT_LIMIT * 1000 - 1)
    high, low = np.divmod(v, 1000)
    small = v < 1000
    lead = vocab.int_zero + np.where(small, v, high)
    tail = np.where(small, vocab.sep[sep], vocab.pad3[sep] + low)
    return lead, tail


def time_ids(vocab: Vocabulary, ms_of_day: np.ndarray, sep: str):
    """(hh:mm:ss ids, trimmed-fraction+separator ids) of milliseconds after midnight."""
    ms = np.clip(np.asarray(ms_of_day, dtype=np.int64), 0, 86_399_999)
    return vocab.hms + ms // 1000, vocab.ms_frac[sep] + ms % 1000


def fixed_text(values: np.ndarray, places: int) -> pa.Array:
    """Fixed-decimal strings of a small array (Arrow kernels; for per-answer tokens)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * 10**places).astype(np.int64)
    text = pc.utf8_lpad(pc.cast(pa.array(np.abs(scaled)), pa.string()), places + 1, "0")
    joined = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(text, 0, -places), pc.utf8_slice_codeunits(text, -places), "."
    )
    return pc.if_else(pa.array(scaled < 0), pc.binary_join_element_wise("-", joined, ""), joined)


# --------------------------------------------------------------------------------------------
# Contracts of an answer
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContractGroup:
    """Contracts of one root and expiration, in answer order (strike, then CALL before PUT)."""

    root: str
    expiration: dt.date
    strikes: np.ndarray  # float64 dollars, one per contract
    rights: np.ndarray  # "C"/"P" per contract
    settles: dt.datetime | None = None  # settlement instant (naive ET), for pricing

    def __len__(self) -> int:
        return len(self.strikes)

    @property
    def is_call(self) -> np.ndarray:
        return self.rights == "C"


def _right_text(rights: np.ndarray, wire: dict[str, str]) -> pa.Array:
    codes = sorted(wire)
    index = np.searchsorted(codes, rights)
    return pc.take(pa.array([wire[c] for c in codes]), pa.array(index))


def v3_contract_text(group: ContractGroup, *, sep: str) -> pa.Array:
    """``SPXW,2024-11-08,5900.000,CALL`` + ``sep`` per contract."""
    head = f"{group.root},{group.expiration.isoformat()},"
    strikes = fixed_text(group.strikes, STRIKE_DECIMALS)
    rights = _right_text(group.rights, RIGHT_CODE_TO_V3_WIRE)
    return pc.binary_join_element_wise(head, strikes, ",", rights, sep, "")


def v3_contract_json(group: ContractGroup) -> pa.Array:
    """``{"symbol":"SPXW","expiration":"2024-11-08","strike":5900.000,"right":"CALL"`` each."""
    names = CONTRACT_COLUMNS
    head = f'{{"{names[0]}":"{group.root}","{names[1]}":"{group.expiration.isoformat()}",'
    strikes = fixed_text(group.strikes, STRIKE_DECIMALS)
    rights = _right_text(group.rights, RIGHT_CODE_TO_V3_WIRE)
    return pc.binary_join_element_wise(
        head + f'"{names[2]}":', strikes, f',"{names[3]}":"', rights, '"', ""
    )


def v2_strike_ints(strikes: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(strikes) * V2_STRIKE_PER_DOLLAR).astype(np.int64)


def v2_contract_close(group: ContractGroup) -> pa.Array:
    """What ends a v2 bulk item: ``]],"contract":{"root":..,"expiration":..,...}}``."""
    root, expiration, strike, right = V2_CONTRACT_COLUMNS
    head = (
        f']],"contract":{{"{root}":"{group.root}",'
        f'"{expiration}":{group.expiration.strftime("%Y%m%d")},"{strike}":'
    )
    strikes = pc.cast(pa.array(v2_strike_ints(group.strikes)), pa.string())
    rights = pa.array(group.rights.astype(str))
    return pc.binary_join_element_wise(head, strikes, f',"{right}":"', rights, '"}}', "")


# --------------------------------------------------------------------------------------------
# Row layouts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One value of a row: ``kind`` is fixed, int, time, date_int or literal."""

    name: str  # wire name in this format
    source: str  # key of the row columns (v3 wire name)
    kind: str
    places: int = 0
    literal: str = ""


@functools.lru_cache(maxsize=64)
def value_fields(dataset: str, api: str, extra_column: bool) -> tuple[Field, ...]:
    """The non-contract values of a dataset's row, in wire order, for ``api`` v3 or v2."""
    schema = SCHEMAS[dataset]
    v3_for_v2 = V2_TIME_COLUMNS.get(dataset, {})
    names = (
        [c for c in ENDPOINTS[dataset].columns if c not in CONTRACT_COLUMNS]
        if api == "v3"
        else list(v2_tick_columns(dataset))
    )
    fields = []
    for name in names:
        source = v3_for_v2.get(name, name) if api == "v2" else name
        if api == "v2" and name == V2_DATE_COLUMN:
            fields.append(Field(name, name, "date_int"))
        elif source in TIMESTAMP_COLUMNS:
            fields.append(Field(name, source, "int" if api == "v2" else "time"))
        elif pa.types.is_integer(schema.field(source).type):
            fields.append(Field(name, source, "int"))
        else:
            fields.append(Field(name, source, "fixed", decimals(dataset, source)))
        if extra_column and source == EXTRA_COLUMN_AFTER:
            fields.append(Field(EXTRA_COLUMN, EXTRA_COLUMN, "literal", literal="0"))
    if extra_column and not any(f.name == EXTRA_COLUMN for f in fields):
        fields.append(Field(EXTRA_COLUMN, EXTRA_COLUMN, "literal", literal="0"))
    return tuple(fields)


@dataclass
class Block:
    """Rows of one block: ``contract`` indexes the answer's contracts; columns by v3 name.

    Numeric columns hold floats or ints; timestamp columns hold milliseconds after midnight
    ET of the answer's session date.
    """

    contract: np.ndarray
    columns: dict[str, np.ndarray]
    day: dt.date
    malformed_row: int | None = None  # index of a row to corrupt (fault injection)

    def __len__(self) -> int:
        return len(self.contract)


@dataclass
class Renderer:
    """Renders the blocks of one answer in one wire format.

    Args:
        fmt: ``csv``, ``ndjson`` or ``json`` (v3), or ``v2`` (JSON envelope with ticks).
        dataset: Dataset whose columns are rendered.
        groups: The answer's contracts.
        extra_column: Insert an unexpected column (fault injection).
        v2_next_page: ``header.next_page`` of a v2 page.
    """

    fmt: str
    dataset: str
    groups: list[ContractGroup]
    extra_column: bool = False
    v2_next_page: str | None = None
    tokens: Tokens = field(init=False)
    fields: tuple[Field, ...] = field(init=False)
    _started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.tokens = Tokens(vocabulary())
        api = "v2" if self.fmt == "v2" else "v3"
        self.fields = value_fields(self.dataset, api, self.extra_column)
        t = self.tokens
        if self.fmt == "csv":
            self.contract_ids = np.concatenate(
                [t.add(v3_contract_text(g, sep=COMMA)) for g in self.groups] or [np.empty(0)]
            ).astype(np.int64)
        elif self.fmt in ("ndjson", "json"):
            self.contract_ids = np.concatenate(
                [t.add(v3_contract_json(g)) for g in self.groups] or [np.empty(0)]
            ).astype(np.int64)
        else:
            self.close_ids = np.concatenate(
                [t.add(v2_contract_close(g)) for g in self.groups] or [np.empty(0)]
            ).astype(np.int64)
            self.open_first = t.literal('{"ticks":[[')
            self.open_item = t.literal(',{"ticks":[[')
            self.open_tick = t.literal(",[")
            self.close_tick = t.literal("]")
        self.garbage = t.literal(f'"{GARBAGE}"' if self.fmt != "csv" else GARBAGE)
        self._date_tokens: dict[tuple[dt.date, str], int] = {}
        for f in self.fields:
            for s in SEPARATORS:
                if f.kind == "literal":
                    t.literal(f.literal + s)
            if self.fmt in ("ndjson", "json"):
                t.literal(f',"{f.name}":')
        for text in ('"', '"' + NONE, "}\n", "}", ",", ""):
            t.literal(text)

    # ---- fixed text around the rows ---------------------------------------------------------
    def header(self) -> bytes:
        if self.fmt == "csv":
            names = [*CONTRACT_COLUMNS, *(f.name for f in self.fields)]
            return (",".join(names) + LINE_END).encode()
        if self.fmt == "json":
            return b'{"response":['
        if self.fmt == "v2":
            head = {
                "id": 0,
                "latency_ms": 0,
                "error_type": "null",
                "error_msg": "null",
                "next_page": self.v2_next_page or "null",
                "format": [f.name for f in self.fields],
            }
            return b'{"header":' + json.dumps(head).encode() + b',"response":['
        return b""

    def footer(self) -> bytes:
        return b"]}" if self.fmt in ("json", "v2") else b""

    def prepare(self, days: Sequence[dt.date]) -> None:
        """Register the date tokens of the sessions the answer covers (before rendering)."""
        for day in days:
            self._date_token(day, "T")
            self._date_token(day, "int")

    def _date_token(self, day: dt.date, style: str) -> int:
        key = (day, style)
        if key not in self._date_tokens:
            text = day.isoformat() + "T" if style == "T" else day.strftime("%Y%m%d")
            self._date_tokens[key] = self.tokens.literal(text)
        return self._date_tokens[key]

    # ---- rows -------------------------------------------------------------------------------
    def render(self, block: Block) -> pa.Buffer:
        """The bytes of a block's rows."""
        if len(block) == 0:
            return pa.py_buffer(b"")
        if self.fmt == "csv":
            columns = self._csv_columns(block)
        elif self.fmt in ("ndjson", "json"):
            columns = self._json_columns(block)
        else:
            columns = self._v2_columns(block)
        ids = np.empty((len(block), len(columns)), dtype=np.int32)
        for i, column in enumerate(columns):
            ids[:, i] = column
        self._started = True
        return self.tokens.gather(ids)

    def _value_columns(self, block: Block, *, last_sep: str, sep: str, quote_times: bool):
        vocab = self.tokens.vocab
        out: list[np.ndarray | int] = []
        corrupt = block.malformed_row
        corrupted = False
        for i, f in enumerate(self.fields):
            s = last_sep if i == len(self.fields) - 1 else sep
            if f.kind == "fixed":
                whole, frac = fixed_ids(vocab, block.columns[f.source], f.places, s)
                if corrupt is not None and not corrupted:
                    whole[corrupt], frac[corrupt] = self.garbage, vocab.sep[s]
                    corrupted = True
                out += [whole, frac]
            elif f.kind == "int":
                out += list(int_ids(vocab, block.columns[f.source], s))
            elif f.kind == "time":
                hms, frac = time_ids(vocab, block.columns[f.source], NONE if quote_times else s)
                out += [self._date_token(block.day, "T"), hms, frac]
                if quote_times:
                    out[-3:-3] = [self.tokens.literal('"')]
                    out.append(self.tokens.literal('"' + s))
            elif f.kind == "date_int":
                out += [self._date_token(block.day, "int"), vocab.sep[s]]
            else:
                out.append(self.tokens.literal(f.literal + s))
        return out

    def _csv_columns(self, block: Block):
        head = self.contract_ids[block.contract]
        return [head, *self._value_columns(block, last_sep=LINE_END, sep=COMMA, quote_times=False)]

    def _json_columns(self, block: Block):
        keyed: list[np.ndarray | int] = [self.contract_ids[block.contract]]
        values = self._value_columns(block, last_sep=NONE, sep=NONE, quote_times=True)
        # Interleave ',"name":' keys: each field contributes a known number of tokens.
        per_field = {"fixed": 2, "int": 2, "time": 5, "date_int": 2, "literal": 1}
        position = 0
        for f in self.fields:
            keyed.append(self.tokens.literal(f',"{f.name}":'))
            width = per_field[f.kind]
            keyed += values[position : position + width]
            position += width
        if self.fmt == "ndjson":
            keyed.append(self.tokens.literal("}\n"))
        else:
            keyed.append(self.tokens.literal("}"))
            first = np.full(len(block), self.tokens.literal(","), dtype=np.int64)
            if not self._started:
                first[0] = self.tokens.literal("")
            keyed.insert(0, first)
        return keyed

    def _v2_columns(self, block: Block):
        contract = block.contract
        first_row = np.ones(len(block), dtype=bool)
        first_row[1:] = contract[1:] != contract[:-1]
        last_row = np.ones(len(block), dtype=bool)
        last_row[:-1] = contract[1:] != contract[:-1]
        opens = np.where(first_row, self.open_item, self.open_tick)
        if not self._started:
            opens[0] = self.open_first
        closes = np.where(last_row, self.close_ids[contract], self.close_tick)
        values = self._value_columns(block, last_sep=NONE, sep=COMMA, quote_times=False)
        return [opens, *values, closes]


def v2_list_body(format_names: Sequence[str], rows: list, *, next_page: str | None = None):
    """A small v2 envelope (list endpoints), built with the json module."""
    head = {
        "id": 0,
        "latency_ms": 0,
        "error_type": "null",
        "error_msg": "null",
        "next_page": next_page or "null",
        "format": list(format_names),
    }
    return json.dumps({"header": head, "response": rows}, separators=(",", ":")).encode()


def v2_error_body(name: str, message: str) -> bytes:
    head = {
        "id": 0,
        "latency_ms": 0,
        "error_type": name,
        "error_msg": message,
        "next_page": "null",
        "format": [],
    }
    return json.dumps({"header": head, "response": []}, separators=(",", ":")).encode()
