"""From ThetaTerminal's wire formats to the typed Arrow schemas of ``core/datasets.py``.

The CSV path streams: the raw HTTP body is wrapped in :class:`BodyStream` (counts bytes,
remembers the last two, turns a dropped connection into :class:`TruncatedResponse`) and fed to
``pyarrow.csv.open_csv``; every column is read as text and converted per batch with Arrow compute
kernels, so memory is bounded by the block size and no Python object is made per row.

Decisions worth knowing:
- Columns are read as text and cast afterwards (rather than typed by the CSV reader) because a
  typed reader aborts the whole stream on one bad value; casting per batch lets a malformed row be
  skipped, counted and handed to the caller for quarantine while the rest of the answer is kept.
  Measured cost: ~150-180 MB/s of CSV on one core, far above what a terminal serves.
- Timestamps are ET wall-clock ISO strings with a variable fraction (``17:15:28.71``); they are
  parsed at nanosecond precision, truncated to milliseconds and localized to America/New_York.
- Malformed rows found in an answer are only reported once the answer is known to be complete;
  a truncated answer is discarded whole, its partial last line included.
- The JSON / NDJSON helpers are for small answers and fixtures (they build Python objects).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import requests
import urllib3.exceptions

from spx_dagster.core.datasets import CONTRACT_FIELDS, SCHEMAS, TIMESTAMP
from spx_dagster.core.thetadata.errors import (
    MalformedResponse,
    ReadTimedOut,
    SchemaError,
    TruncatedResponse,
)
from spx_dagster.core.thetadata.vendor import (
    CONTRACT_COLUMNS,
    CSV_LINE_END,
    ENDPOINTS,
    EXCHANGE_TIMEZONE,
    LIST_CONTRACTS_COLUMNS,
    LIST_EXPIRATIONS_COLUMNS,
    LIST_STRIKES_COLUMNS,
    RIGHT_WIRE_TO_CODE,
)

log = logging.getLogger("spx_dagster.thetadata")

BLOCK_SIZE = 1 << 20  # bytes per CSV block: as fast as 4 MiB over HTTP, less memory held
MAX_HEADER_BYTES = 64 << 10
ROOT_WIRE_COLUMN = CONTRACT_COLUMNS[0]  # the wire calls the root "symbol"

MalformedRow = tuple[str, str]  # (line text, reason)
OnMalformed = Callable[[str, str], None]


# --------------------------------------------------------------------------------------------
# Output shapes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WireSpec:
    """Which wire column feeds which typed output field, for one kind of answer."""

    name: str
    schema: pa.Schema
    wire_names: tuple[str, ...]

    @classmethod
    def from_wire_columns(cls, name: str, wire_columns: Iterable[str], schema: pa.Schema):
        wire = tuple(wire_columns)
        expected = tuple("root" if c == ROOT_WIRE_COLUMN else c for c in wire)
        if expected != tuple(schema.names):
            raise ValueError(f"{name}: wire columns {wire} do not match schema {schema.names}")
        return cls(name, schema, wire)

    @property
    def fields(self) -> Iterator[tuple[pa.Field, str]]:
        return zip(self.schema, self.wire_names, strict=True)


_FIELD = {f.name: f for f in CONTRACT_FIELDS}
LIST_SCHEMAS: dict[str, pa.Schema] = {
    "list_expirations": pa.schema([_FIELD["root"], _FIELD["expiration"]]),
    "list_strikes": pa.schema([_FIELD["root"], _FIELD["strike"]]),
    "list_contracts": pa.schema(CONTRACT_FIELDS),
}
SPECS: dict[str, WireSpec] = {
    **{d: WireSpec.from_wire_columns(d, e.columns, SCHEMAS[d]) for d, e in ENDPOINTS.items()},
    "list_expirations": WireSpec.from_wire_columns(
        "list_expirations", LIST_EXPIRATIONS_COLUMNS, LIST_SCHEMAS["list_expirations"]
    ),
    "list_strikes": WireSpec.from_wire_columns(
        "list_strikes", LIST_STRIKES_COLUMNS, LIST_SCHEMAS["list_strikes"]
    ),
    "list_contracts": WireSpec.from_wire_columns(
        "list_contracts", LIST_CONTRACTS_COLUMNS, LIST_SCHEMAS["list_contracts"]
    ),
}


# --------------------------------------------------------------------------------------------
# Text -> typed columns, one batch at a time
# --------------------------------------------------------------------------------------------
_RIGHT_WIRE = pa.array(list(RIGHT_WIRE_TO_CODE), pa.string())
_RIGHT_CODE = pa.array(list(RIGHT_WIRE_TO_CODE.values()), pa.string())
_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
_PATTERNS = {
    "float": rf"^({_NUMBER}|[+-]?(?i:nan|inf|infinity))$",
    "int": r"^[+-]?\d+$",
    "date": r"^(\d{4}-\d{2}-\d{2}|\d{8})$",
    "timestamp": r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$",
}


def _kind(typ: pa.DataType) -> str:
    if pa.types.is_floating(typ):
        return "float"
    if pa.types.is_integer(typ):
        return "int"
    if pa.types.is_date(typ):
        return "date"
    if pa.types.is_timestamp(typ):
        return "timestamp"
    return "string"


def _to_date(text: pa.Array) -> pa.Array:
    try:
        return pc.cast(text, pa.date32())
    except pa.ArrowInvalid:
        # v3 accepts YYYYMMDD in requests; tolerate it in answers too.
        return pc.cast(pc.strptime(text, format="%Y%m%d", unit="s"), pa.date32())


def _to_timestamp(text: pa.Array) -> pa.Array:
    # Parse at ns so any fraction length (.7, .71, .123456) is accepted, then truncate to ms.
    wall = pc.cast(pc.cast(text, pa.timestamp("ns")), pa.timestamp("ms"), safe=False)
    return pc.assume_timezone(
        wall, EXCHANGE_TIMEZONE, ambiguous="earliest", nonexistent="earliest"
    ).cast(TIMESTAMP)


def _to_right(text: pa.Array) -> pa.Array:
    index = pc.index_in(text, value_set=_RIGHT_WIRE)
    if index.null_count != text.null_count:
        raise ValueError("right is not one of " + "/".join(RIGHT_WIRE_TO_CODE))
    return pc.take(_RIGHT_CODE, index)


def convert_column(text: pa.Array, out: pa.Field) -> pa.Array:
    """Convert one text column to ``out``'s type; raise on any bad value (ArrowInvalid/ValueError).

    Empty fields arrive as nulls; they are allowed except in non-nullable (contract) fields.
    """
    if not out.nullable and text.null_count:
        raise ValueError(f"missing value in required column {out.name!r}")
    if out.name == "right":
        return _to_right(text)
    kind = _kind(out.type)
    if kind == "string":
        return text
    if kind == "date":
        return _to_date(text)
    if kind == "timestamp":
        return _to_timestamp(text)
    return pc.cast(text, out.type)


def _bad_values(text: pa.Array, out: pa.Field) -> list[int]:
    """Indices of the values of ``text`` that cannot become ``out``: the slow path, rare."""
    kind = _kind(out.type)
    if out.name == "right":
        candidate = pc.is_in(text, value_set=_RIGHT_WIRE)
    elif kind in _PATTERNS:
        candidate = pc.match_substring_regex(text, _PATTERNS[kind])
    else:
        candidate = pc.is_valid(text)
    flags = pc.fill_null(candidate, out.nullable).to_pylist()
    bad = [i for i, ok in enumerate(flags) if not ok]
    passed = [i for i, ok in enumerate(flags) if ok]
    with contextlib.suppress(pa.ArrowInvalid, ValueError):
        convert_column(text.take(pa.array(passed, pa.int64())), out)
        return bad
    # The pattern passed values the cast still rejects (int16 overflow, month 13): check each.
    for i in passed:
        try:
            convert_column(text.slice(i, 1), out)
        except (pa.ArrowInvalid, ValueError):
            bad.append(i)
    return sorted(bad)


def _line_text(batch: pa.RecordBatch, index: int) -> str:
    row = batch.slice(index, 1).to_pylist()[0]
    return ",".join("" if v is None else str(v) for v in row.values())


class BatchConverter:
    """Converts batches of text columns (named as on the wire) into ``spec.schema``."""

    def __init__(self, spec: WireSpec) -> None:
        self.spec = spec

    def convert(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[MalformedRow]]:
        """The typed batch and the rows dropped from it as (line text, reason)."""
        with contextlib.suppress(pa.ArrowInvalid, ValueError):
            return self._convert_all(batch), []
        reasons: dict[int, str] = {}
        for out, wire in self.spec.fields:
            text = batch.column(wire)
            with contextlib.suppress(pa.ArrowInvalid, ValueError):
                convert_column(text, out)
                continue
            for i in _bad_values(text, out):
                value = text[i].as_py()
                reasons.setdefault(
                    i,
                    f"column {wire!r}: missing value"
                    if value is None
                    else f"column {wire!r}: {value!r} is not a valid {_kind(out.type)}"
                    + (" (CALL/PUT)" if out.name == "right" else ""),
                )
        malformed = [(_line_text(batch, i), reasons[i]) for i in sorted(reasons)]
        keep = pa.array([i not in reasons for i in range(batch.num_rows)], pa.bool_())
        return self._convert_all(batch.filter(keep)), malformed

    def _convert_all(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [convert_column(batch.column(wire), out) for out, wire in self.spec.fields]
        return pa.RecordBatch.from_arrays(arrays, schema=self.spec.schema)


# --------------------------------------------------------------------------------------------
# The body stream
# --------------------------------------------------------------------------------------------
_TRUNCATION_ERRORS = (
    urllib3.exceptions.ProtocolError,  # includes IncompleteRead, InvalidChunkLength
    urllib3.exceptions.DecodeError,
    http.client.IncompleteRead,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,  # reset / aborted / broken pipe
)
_TIMEOUT_ERRORS = (urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError)


class BodyStream(io.RawIOBase):
    """A file-like over an HTTP body that notices when it is cut short.

    Args:
        raw: The urllib3 response (``requests.Response.raw``) or any object with ``read(n)``.
        url: The request URL, for error messages.
        content_length: The ``Content-Length`` header when the body is not content-encoded.
    """

    def __init__(self, raw: Any, *, url: str, content_length: int | None = None) -> None:
        super().__init__()
        self._raw = raw
        self.url = url
        self.content_length = content_length
        self.bytes_read = 0
        self.tail = b""
        self._pushback = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _read_raw(self, n: int) -> bytes:
        if self._eof:
            return b""
        try:
            try:
                chunk = self._raw.read(n, decode_content=True)
            except TypeError:  # plain file objects (tests, fixtures)
                chunk = self._raw.read(n)
        except _TIMEOUT_ERRORS as exc:
            raise ReadTimedOut(
                f"the terminal stopped sending the answer from {self.url} after "
                f"{self.bytes_read} bytes ({exc})",
                url=self.url,
                advice="retried; raise thetadata.timeout_s if the terminal is just slow",
            ) from exc
        except _TRUNCATION_ERRORS as exc:
            raise self._truncated(f"the connection dropped ({type(exc).__name__}: {exc})") from exc
        if not chunk:
            self._eof = True
            return b""
        self.bytes_read += len(chunk)
        self.tail = (self.tail + chunk[-2:])[-2:]
        return chunk

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._pushback]
            self._pushback = b""
            while chunk := self._read_raw(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        if self._pushback:
            out, self._pushback = self._pushback[:n], self._pushback[n:]
            return out
        return self._read_raw(n)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read_line(self, *, limit: int = MAX_HEADER_BYTES) -> bytes:
        """The first line including its terminator (b"" if the body is empty)."""
        data = b""
        while b"\n" not in data:
            if len(data) > limit:
                raise MalformedResponse(
                    f"the answer from {self.url} has no header line in its first {limit} bytes",
                    url=self.url,
                    advice="check thetadata.base_url points at ThetaTerminal",
                )
            chunk = self.read(64 << 10)
            if not chunk:
                self._pushback = b""
                return data
            data += chunk
        end = data.index(b"\n") + 1
        self._pushback = data[end:] + self._pushback
        return data[:end]

    def at_eof(self) -> bool:
        if self._pushback:
            return False
        self._pushback = self._read_raw(64 << 10)
        return not self._pushback

    def _truncated(self, why: str) -> TruncatedResponse:
        expected = f" of {self.content_length}" if self.content_length is not None else ""
        return TruncatedResponse(
            f"the answer from {self.url} is incomplete after {self.bytes_read}{expected} bytes: "
            f"{why}",
            url=self.url,
            advice="the whole request is retried; nothing from the partial answer is kept",
        )

    def verify_complete(self, line_end: bytes) -> None:
        """Raise TruncatedResponse unless the body was read to its announced end.

        Args:
            line_end: What the last row must end with (``vendor.CSV_LINE_END`` for CSV).
        """
        if not self._eof and not self.at_eof():
            self.read()  # drain, so the length checks below see everything
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise self._truncated("Content-Length mismatch")
        if line_end and not self.tail.endswith(line_end):
            raise self._truncated(f"the body does not end with {line_end!r} after its last row")


# --------------------------------------------------------------------------------------------
# CSV answers
# --------------------------------------------------------------------------------------------
@dataclass
class CsvAnswer:
    """One streamed CSV answer: iterate it for typed batches.

    After iteration ``rows``, ``malformed`` and ``extra_columns`` describe it. Iteration ends
    with :class:`TruncatedResponse` if the body was cut short, whatever was yielded before.
    """

    body: BodyStream
    spec: WireSpec
    block_size: int = BLOCK_SIZE
    rows: int = 0
    malformed: list[MalformedRow] = field(default_factory=list)
    extra_columns: tuple[str, ...] = ()
    header: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        line_end = self._read_header()
        converter = BatchConverter(self.spec)
        if not self.body.at_eof():
            reader = pacsv.open_csv(
                self.body,
                read_options=pacsv.ReadOptions(
                    column_names=list(self.header), block_size=self.block_size, use_threads=True
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=self._wrong_field_count),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in self.header},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    null_values=[""],
                ),
            )
            for text_batch in reader:
                batch, malformed = converter.convert(text_batch)
                self.malformed.extend(malformed)
                if batch.num_rows:
                    self.rows += batch.num_rows
                    yield batch
        self.body.verify_complete(line_end)

    def _read_header(self) -> bytes:
        raw = self.body.read_line()
        if not raw:
            raise self.body._truncated("the body is empty (not even a header line)")
        if not raw.endswith(b"\n"):
            raise self.body._truncated("the header line is not terminated")
        line_end = CSV_LINE_END.encode()
        if not raw.endswith(line_end):
            line_end = b"\n"
            log.warning("answer from %s uses bare LF line ends, not CRLF", self.body.url)
        text = raw.decode("utf-8-sig").rstrip("\r\n")
        self.header = tuple(name.strip().strip('"') for name in text.split(","))
        missing = [w for w in self.spec.wire_names if w not in self.header]
        if missing:
            raise SchemaError(
                f"the answer from {self.body.url} has no column {missing[0]!r}"
                f" (expected {', '.join(self.spec.wire_names)}; got {', '.join(self.header)})",
                url=self.body.url,
                advice="the terminal's wire format changed: update ThetaTerminal and spx-data",
            )
        self.extra_columns = tuple(h for h in self.header if h not in self.spec.wire_names)
        return line_end

    def _wrong_field_count(self, row) -> str:
        self.malformed.append(
            (row.text, f"expected {row.expected_columns} fields, got {row.actual_columns}")
        )
        return "skip"


# --------------------------------------------------------------------------------------------
# JSON and NDJSON (small answers, fixtures; v3 documents format=json/ndjson too)
# --------------------------------------------------------------------------------------------
def table_from_records(
    records: Iterable[Mapping[str, Any]], spec: WireSpec
) -> tuple[pa.Table, list[MalformedRow]]:
    """Typed table from row dicts keyed by wire names (extra keys ignored)."""
    rows = list(records)
    columns = {}
    for wire in spec.wire_names:
        values = [r.get(wire) for r in rows]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = pa.array([None if v is None else str(v) for v in values], pa.string())
        columns[wire] = array if pa.types.is_string(array.type) else pc.cast(array, pa.string())
    text = pa.RecordBatch.from_pydict(
        columns, schema=pa.schema([(w, pa.string()) for w in spec.wire_names])
    )
    batch, malformed = BatchConverter(spec).convert(text)
    return pa.Table.from_batches([batch], schema=spec.schema), malformed


def parse_ndjson(data: bytes | str, spec: WireSpec) -> tuple[pa.Table, list[MalformedRow]]:
    """Typed table from a ``format=ndjson`` answer (one JSON object per line)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return table_from_records(
        (json.loads(line) for line in text.splitlines() if line.strip()), spec
    )


def parse_json(data: bytes | str | Mapping, spec: WireSpec) -> tuple[pa.Table, list[MalformedRow]]:
    """Typed table from a v3 ``format=json`` answer in any of its known shapes.

    Shapes: ``{"response": [{"contract": {...}, "data": [rows]}]}`` (grouped by contract),
    ``{"response": [rows]}`` (flat), and columnar ``{field: [values, ...]}`` (late 2025).
    """
    obj = json.loads(data) if isinstance(data, bytes | str) else data
    if isinstance(obj, Mapping) and "response" in obj:
        records: list[Mapping[str, Any]] = []
        for item in obj["response"]:
            if isinstance(item, Mapping) and "contract" in item and "data" in item:
                records.extend({**item["contract"], **row} for row in item["data"])
            else:
                records.append(item)
        return table_from_records(records, spec)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) != 1:
            raise MalformedResponse(
                f"columnar JSON with columns of different lengths {sorted(lengths)}",
                advice="request format=csv",
            )
        n = lengths.pop()
        keys = list(obj)
        return table_from_records(({k: obj[k][i] for k in keys} for i in range(n)), spec)
    raise MalformedResponse(
        "unrecognised JSON answer shape", advice="request format=csv (the documented default)"
    )
