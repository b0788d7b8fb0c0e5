"""The v3 terminal's requests: query parameters and streamed CSV answers.

Every request asks for ``format=csv`` explicitly (v3's JSON shapes have changed over time; its
CSV has not). Paging is not documented for v3; a ``Next-Page`` header is followed defensively.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import pyarrow as pa

from spx_dagster.core.thetadata.transport import AttemptLog, HistoryRequest, Http
from spx_dagster.core.thetadata.vendor import (
    ENDPOINTS,
    LIST_CONTRACTS_PATH,
    LIST_CONTRACTS_TIER,
    LIST_EXPIRATIONS_PATH,
    LIST_STRIKES_PATH,
    NEXT_PAGE_HEADER,
    RIGHT_CODE_TO_V3_PARAM,
    V2_NULL_PAGE,
)
from spx_dagster.core.thetadata.wire import SPECS, CsvAnswer, WireSpec

CSV_FORMAT = {"format": "csv"}
ALL_EXPIRATIONS = "*"


def ymd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def history_params(request: HistoryRequest, *, end_time: dt.time | None) -> dict[str, str]:
    """Query parameters of one v3 history request."""
    endpoint = ENDPOINTS[request.dataset]
    params = {
        "symbol": request.root,
        "expiration": ymd(request.expiration) if request.expiration else ALL_EXPIRATIONS,
    }
    if endpoint.date_style == "range":
        params["start_date"] = params["end_date"] = ymd(request.session_date)
    else:
        params["date"] = ymd(request.session_date)
    if endpoint.intraday:
        params["interval"] = request.interval
        end_time = request.end_time(end_time)
        if end_time is not None:
            params["end_time"] = end_time.strftime("%H:%M:%S")
    if request.right is not None:
        params["right"] = RIGHT_CODE_TO_V3_PARAM[request.right]
    if request.strike is not None:
        params["strike"] = f"{request.strike:.3f}"
    return {**params, **CSV_FORMAT}


class V3Wire:
    """Requests and answers of the v3 terminal (``/v3`` prefix)."""

    api_version = "v3"
    split_dimensions = ("expiration", "right", "strike")

    def __init__(self, *, end_time: dt.time | None = None) -> None:
        self.end_time = end_time

    def history(
        self, http: Http, request: HistoryRequest, log: AttemptLog
    ) -> Iterator[pa.RecordBatch]:
        endpoint = ENDPOINTS[request.dataset]
        params = history_params(request, end_time=self.end_time)
        yield from self._csv(
            http, endpoint.path, params, SPECS[request.dataset], log, endpoint.tier
        )

    def list_expirations(self, http: Http, root: str, log: AttemptLog) -> Iterator[pa.RecordBatch]:
        params = {"symbol": root, **CSV_FORMAT}
        yield from self._csv(http, LIST_EXPIRATIONS_PATH, params, SPECS["list_expirations"], log)

    def list_strikes(
        self, http: Http, root: str, expiration: dt.date, log: AttemptLog
    ) -> Iterator[pa.RecordBatch]:
        params = {"symbol": root, "expiration": ymd(expiration), **CSV_FORMAT}
        yield from self._csv(http, LIST_STRIKES_PATH, params, SPECS["list_strikes"], log)

    def list_contracts(
        self, http: Http, session_date: dt.date, roots: Sequence[str], log: AttemptLog
    ) -> Iterator[pa.RecordBatch]:
        params = {"date": ymd(session_date), "symbol": ",".join(roots), **CSV_FORMAT}
        yield from self._csv(
            http, LIST_CONTRACTS_PATH, params, SPECS["list_contracts"], log, LIST_CONTRACTS_TIER
        )

    def _csv(self, http, path, params, spec: WireSpec, log: AttemptLog, tier=None):
        target: str | None = path
        query: dict[str, str] | None = params
        while target:
            log.requests += 1
            with http.open(target, query, required_tier=tier) as answer:
                csv = CsvAnswer(answer.body, spec)
                try:
                    yield from csv
                finally:
                    log.bytes += answer.body.bytes_read
                log.note(csv, url=answer.url)
                next_page = answer.headers.get(NEXT_PAGE_HEADER, "").strip()
            target, query = (
                (next_page, None) if next_page not in ("", V2_NULL_PAGE) else (None, None)
            )
