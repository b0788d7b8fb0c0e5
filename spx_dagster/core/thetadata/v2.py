"""Adapter for the legacy v2 terminal: the same answers, typed like v3's.

v2 differs on the wire (see THETADATA.md): ``root``/``exp``/``start_date``/``end_date`` int
parameters, ``ivl`` in milliseconds, strikes in 1/10 cent, rights ``C``/``P``, times as
``ms_of_day`` + ``date``, and a JSON envelope ``{"header": {"format": [...], "next_page": ...,
"error_type": ...}, "response": [...]}`` served in pages (``header.next_page`` or the
``Next-Page`` header; the string "null" means no more). Each page is converted to v3-shaped text
columns and goes through the same converter as v3's CSV, so both generations produce identical
schemas and the same malformed-row handling.

Limits of the adapter: a page is parsed whole (JSON), so memory is bounded by the terminal's page
size rather than by a CSV block; a too-large request (570) can only be split per expiration (v2
bulk endpoints take no right or strike); an expired page (477) re-issues the whole request.
Uncertain: with ``end_time`` set, intraday requests send ``rth=false`` with ``start_time`` and
``end_time`` in ms after midnight, as the v2 documentation describes for bulk history.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spx_dagster.core.thetadata.errors import (
    LargeRequest,
    MalformedResponse,
    SchemaError,
    error_for_status,
)
from spx_dagster.core.thetadata.transport import AttemptLog, HistoryRequest, Http
from spx_dagster.core.thetadata.vendor import (
    CONTRACT_COLUMNS,
    ENDPOINTS,
    INTERVALS,
    INTRADAY_START,
    LIST_CONTRACTS_TIER,
    NEXT_PAGE_HEADER,
    STATUS_CODES,
    V2_ALL_EXPIRATIONS,
    V2_CONTRACT_COLUMNS,
    V2_DATE_COLUMN,
    V2_LIST_CONTRACTS_PATH,
    V2_LIST_EXPIRATIONS_PATH,
    V2_LIST_STRIKES_PATH,
    V2_NULL_PAGE,
    V2_STRIKE_PER_DOLLAR,
    V2_TIME_COLUMNS,
)
from spx_dagster.core.thetadata.wire import SPECS, BatchConverter, WireSpec

_NO_ERROR = (None, "", V2_NULL_PAGE)
_CODE_BY_NAME = {s.name: s.code for s in STATUS_CODES.values()}
_V3_FOR_V2_CONTRACT = dict(zip(V2_CONTRACT_COLUMNS, CONTRACT_COLUMNS, strict=True))


def ymd_int(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _ms_of_day(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def history_params(request: HistoryRequest, *, end_time: dt.time | None) -> dict[str, str]:
    """Query parameters of one v2 bulk history request."""
    endpoint = ENDPOINTS[request.dataset]
    params = {
        "root": request.root,
        "exp": ymd_int(request.expiration) if request.expiration else str(V2_ALL_EXPIRATIONS),
        "start_date": ymd_int(request.session_date),
        "end_date": ymd_int(request.session_date),
    }
    if endpoint.intraday:
        params["ivl"] = str(INTERVALS[request.interval])
        end_time = request.end_time(end_time)
        if end_time is not None:
            params.update(
                rth="false",
                start_time=str(_ms_of_day(INTRADAY_START)),
                end_time=str(_ms_of_day(end_time)),
            )
    return params


# --------------------------------------------------------------------------------------------
# Envelope -> v3-shaped text columns
# --------------------------------------------------------------------------------------------
def _column(values: list[Any]) -> pa.Array:
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), pa.string())
    return array


def envelope_columns(envelope: Mapping[str, Any]) -> dict[str, pa.Array]:
    """The rows of one v2 page as columns named as in ``header.format`` plus contract fields.

    Handles bulk pages (``[{"ticks": [[...]], "contract": {...}}]``), flat rows (lists in
    ``format`` order) and lists of scalars (list endpoints, one column).
    """
    header = envelope.get("header") or {}
    fmt = list(header.get("format") or [])
    response = envelope.get("response") or []
    values: dict[str, list[Any]] = {name: [] for name in fmt}
    for item in response:
        if isinstance(item, Mapping) and "ticks" in item:
            ticks = item["ticks"] or []
            contract = item.get("contract") or {}
            for key in V2_CONTRACT_COLUMNS:
                values.setdefault(key, []).extend([contract.get(key)] * len(ticks))
            for tick in ticks:
                for name, value in zip(fmt, tick, strict=False):
                    values[name].append(value)
                for name in fmt[len(tick) :]:
                    values[name].append(None)
        elif isinstance(item, list | tuple):
            for i, name in enumerate(fmt):
                values[name].append(item[i] if i < len(item) else None)
        elif len(fmt) == 1:
            values[fmt[0]].append(item)
        else:
            raise MalformedResponse(
                f"unrecognised v2 row {str(item)[:100]!r} for format {fmt}",
                advice="update ThetaTerminal, or switch to v3 (thetadata.api_version v3)",
            )
    return {name: _column(v) for name, v in values.items()}


def _text(array: pa.Array) -> pa.Array:
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _strike_text(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type):
        array = pc.cast(array, pa.float64())
    dollars = pc.divide(pc.cast(array, pa.float64()), float(V2_STRIKE_PER_DOLLAR))
    return pc.cast(dollars, pa.string())


def _iso_times(dates: pa.Array, ms_of_day: pa.Array) -> pa.Array:
    """ET wall-clock ISO text from v2 ``date`` ints and ``ms_of_day`` ints."""
    midnight = pc.strptime(_text(dates), format="%Y%m%d", unit="ms")
    offset = pc.cast(pc.cast(ms_of_day, pa.int64()), pa.duration("ms"))
    return pc.strftime(pc.add(midnight, offset), format="%Y-%m-%dT%H:%M:%S")


def to_v3_text(
    columns: Mapping[str, pa.Array],
    spec: WireSpec,
    *,
    dataset: str | None = None,
    root: str | None = None,
    session_date: dt.date | None = None,
) -> pa.RecordBatch:
    """v2 columns as the text columns (v3 wire names) that ``BatchConverter`` takes.

    Args:
        columns: From :func:`envelope_columns`.
        spec: The output spec (v3 wire names).
        dataset: Selects the time-column mapping (``vendor.V2_TIME_COLUMNS``).
        root: Fills ``symbol`` where the v2 answer has no root column (list endpoints).
        session_date: Stands in for a missing ``date`` column.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    out: dict[str, pa.Array] = {}
    for v2_name, v3_name in _V3_FOR_V2_CONTRACT.items():
        if v2_name in columns:
            array = columns[v2_name]
            out[v3_name] = _strike_text(array) if v2_name == "strike" else _text(array)
    if "symbol" not in out and root is not None:
        out["symbol"] = pa.array([root] * n, pa.string())
    dates = columns.get(V2_DATE_COLUMN)
    if dates is None and session_date is not None:
        dates = pa.array([int(ymd_int(session_date))] * n, pa.int64())
    for v2_name, v3_name in V2_TIME_COLUMNS.get(dataset or "", {}).items():
        if v2_name in columns and dates is not None:
            out[v3_name] = _iso_times(dates, columns[v2_name])
    for name in spec.wire_names:
        if name not in out and name in columns:
            out[name] = _text(columns[name])
    missing = [w for w in spec.wire_names if w not in out]
    if missing:
        raise SchemaError(
            f"the v2 answer has no column for {missing[0]!r} (got {', '.join(columns)})",
            advice="the terminal's wire format changed: update ThetaTerminal and spx-data",
        )
    return pa.RecordBatch.from_arrays(
        [out[w] for w in spec.wire_names],
        schema=pa.schema([(w, pa.string()) for w in spec.wire_names]),
    )


def parse_envelope(data: bytes | str | Mapping[str, Any], *, url: str = "") -> Mapping[str, Any]:
    """The decoded envelope; a v2 ``error_type`` in its header becomes the typed error."""
    envelope = json.loads(data) if isinstance(data, bytes | str) else data
    if not isinstance(envelope, Mapping) or "response" not in envelope:
        raise MalformedResponse(
            "the v2 answer is not a {header, response} envelope",
            advice="check thetadata.api_version matches the terminal",
        )
    error_type = (envelope.get("header") or {}).get("error_type")
    if error_type not in _NO_ERROR and error_type in _CODE_BY_NAME:
        raise error_for_status(
            _CODE_BY_NAME[error_type],
            url=url,
            body=str((envelope.get("header") or {}).get("error_msg", "")),
        )
    return envelope


class V2Wire:
    """Requests and answers of the legacy v2 terminal (``/v2`` prefix)."""

    api_version = "v2"
    split_dimensions = ("expiration",)

    def __init__(self, *, end_time: dt.time | None = None) -> None:
        self.end_time = end_time

    def history(
        self, http: Http, request: HistoryRequest, log: AttemptLog
    ) -> Iterator[pa.RecordBatch]:
        endpoint = ENDPOINTS[request.dataset]
        if endpoint.v2_path is None:
            raise ValueError(
                f"{request.dataset} has no v2 endpoint: drop it from processing.datasets or "
                "use a v3 terminal (thetadata.api_version v3)"
            )
        if request.right is not None or request.strike is not None:
            raise LargeRequest(
                f"{request.describe()} is too large for one v2 request and v2 bulk endpoints "
                "cannot be split by right or strike",
                advice="use a v3 terminal (thetadata.api_version v3)",
            )
        params = history_params(request, end_time=self.end_time)
        yield from self._pages(
            http,
            endpoint.v2_path,
            params,
            SPECS[request.dataset],
            log,
            dataset=request.dataset,
            session_date=request.session_date,
            tier=endpoint.tier,
        )

    def list_expirations(self, http: Http, root: str, log: AttemptLog) -> Iterator[pa.RecordBatch]:
        yield from self._pages(
            http,
            V2_LIST_EXPIRATIONS_PATH,
            {"root": root},
            SPECS["list_expirations"],
            log,
            root=root,
            rename={"date": "expiration"},
        )

    def list_strikes(
        self, http: Http, root: str, expiration: dt.date, log: AttemptLog
    ) -> Iterator[pa.RecordBatch]:
        params = {"root": root, "exp": ymd_int(expiration)}
        yield from self._pages(
            http, V2_LIST_STRIKES_PATH, params, SPECS["list_strikes"], log, root=root
        )

    def list_contracts(
        self, http: Http, session_date: dt.date, roots: Sequence[str], log: AttemptLog
    ) -> Iterator[pa.RecordBatch]:
        for root in roots:
            params = {"start_date": ymd_int(session_date), "root": root}
            yield from self._pages(
                http,
                V2_LIST_CONTRACTS_PATH,
                params,
                SPECS["list_contracts"],
                log,
                root=root,
                tier=LIST_CONTRACTS_TIER,
            )

    def _pages(
        self,
        http: Http,
        path: str,
        params: Mapping[str, str] | None,
        spec: WireSpec,
        log: AttemptLog,
        *,
        dataset: str | None = None,
        root: str | None = None,
        session_date: dt.date | None = None,
        tier=None,
        rename: Mapping[str, str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        converter = BatchConverter(spec)
        target: str | None = path
        query = params
        while target:
            log.requests += 1
            with http.open(target, query, required_tier=tier) as answer:
                try:
                    data = answer.body.read()
                    answer.body.verify_complete(b"")
                finally:
                    log.bytes += answer.body.bytes_read
                try:
                    envelope = parse_envelope(data, url=answer.url)
                except json.JSONDecodeError as exc:
                    raise MalformedResponse(
                        f"the v2 answer from {answer.url} is not valid JSON ({exc})",
                        url=answer.url,
                        advice="retried; check thetadata.api_version matches the terminal",
                    ) from exc
                header = envelope.get("header") or {}
                next_page = str(header.get("next_page") or "").strip()
                if next_page in _NO_ERROR:
                    next_page = answer.headers.get(NEXT_PAGE_HEADER, "").strip()
            columns = envelope_columns(envelope)
            for old, new in (rename or {}).items():
                if old in columns:
                    columns[new] = columns.pop(old)
            if columns and len(next(iter(columns.values()))):
                text = to_v3_text(
                    columns, spec, dataset=dataset, root=root, session_date=session_date
                )
                batch, malformed = converter.convert(text)
                log.malformed.extend(malformed)
                if batch.num_rows:
                    log.rows += batch.num_rows
                    yield batch
            target, query = (next_page, None) if next_page not in _NO_ERROR else (None, None)
