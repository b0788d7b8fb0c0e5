"""One HTTP request to ThetaTerminal, turned into a body stream or a typed error.

Shared by the v3 and v2 wire modules and the client: it holds a request slot (the process-wide
semaphore of ``limits.py``) from sending the request until its body is closed, applies the
(connect, read) timeouts, maps transport failures and status codes to the classes of
``errors.py``, and counts requests.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3.exceptions

from spx_dagster.core.calendar import intraday_end
from spx_dagster.core.thetadata.errors import (
    ConnectionLost,
    ReadTimedOut,
    TerminalBug,
    TerminalUnreachable,
    error_for_status,
)
from spx_dagster.core.thetadata.retry import ClientStats
from spx_dagster.core.thetadata.vendor import (
    API_PREFIX,
    INTRADAY_END,
    RETRY_AFTER_HEADER,
    Behaviour,
    Tier,
    status_behaviour,
)
from spx_dagster.core.thetadata.wire import BodyStream, CsvAnswer

log = logging.getLogger("spx_dagster.thetadata")
ERROR_BODY_BYTES = 4096


@dataclass(frozen=True)
class HistoryRequest:
    """One history request: a dataset for a root, session and expiration (None: all).

    ``right`` ("C"/"P") and ``strike`` (dollars) narrow it when a too-large request is split.
    """

    dataset: str
    root: str
    session_date: dt.date
    expiration: dt.date | None
    interval: str = "1m"
    right: str | None = None
    strike: float | None = None

    def describe(self) -> str:
        parts = [
            self.dataset,
            self.root,
            self.session_date.isoformat(),
            self.expiration.isoformat() if self.expiration else "*",
        ]
        if self.right:
            parts.append(self.right)
        if self.strike is not None:
            parts.append(f"{self.strike:g}")
        return " ".join(parts)

    def end_time(self, configured: dt.time | None) -> dt.time | None:
        """The intraday ``end_time`` to send: ``configured`` (None keeps the terminal's
        16:00 default) on a regular session, and on an early-close day the end moved as much
        earlier as the close, asked for explicitly: the checks expect a half day's window, and
        whatever a terminal does past the close by default, it answers an explicit end."""
        regular = configured or INTRADAY_END
        end = intraday_end(self.session_date, regular)
        return configured if end == regular else end


@dataclass
class AttemptLog:
    """What one attempt received; kept only if the attempt completes."""

    bytes: int = 0
    rows: int = 0
    requests: int = 0
    malformed: list[tuple[str, str]] = field(default_factory=list)
    extra_columns: set[str] = field(default_factory=set)

    def note(self, answer: CsvAnswer, *, url: str) -> None:
        self.rows += answer.rows
        self.malformed.extend(answer.malformed)
        if answer.extra_columns:
            self.extra_columns.update(answer.extra_columns)
            log.warning(
                "schema drift: dropped unknown column(s) %s from %s",
                ", ".join(answer.extra_columns),
                url,
            )
        if answer.malformed:
            log.warning("skipped %d malformed row(s) in %s", len(answer.malformed), url)


@dataclass
class HttpAnswer:
    body: BodyStream
    headers: Mapping[str, str]
    url: str


def _refused(exc: requests.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)


class Http:
    """Requests to one terminal with shared slots, timeouts and typed errors.

    Args:
        base_url: Terminal root (``http://127.0.0.1:25503``), no version prefix.
        api_version: ``v3`` or ``v2``; selects the path prefix.
        slots: The process-wide semaphore for this terminal.
        connect_timeout_s: TCP connect timeout.
        timeout_s: Read timeout (longest silence while waiting for bytes).
        stats: Counters to update.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        slots: threading.BoundedSemaphore,
        connect_timeout_s: float,
        timeout_s: float,
        stats: ClientStats,
        pool_size: int = 10,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.prefix = API_PREFIX[api_version]
        self.slots = slots
        self.timeout = (connect_timeout_s, timeout_s)
        self.stats = stats
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=max(pool_size, 10), max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url_for(self, path: str, params: Mapping[str, str] | None = None) -> str:
        base = path if urlsplit(path).scheme else self.base_url + self.prefix + path
        return requests.Request("GET", base, params=dict(params or {})).prepare().url

    @contextmanager
    def open(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        required_tier: Tier | None = None,
    ) -> Iterator[HttpAnswer]:
        """Send one GET and yield its streamed body; the slot is held until the block exits.

        Raises:
            TerminalUnreachable: Nothing accepted the connection.
            ConnectionLost: The connection broke before the status line.
            ReadTimedOut: No answer within the read timeout.
            StatusError: A subclass per status code (NoData for "no data").
        """
        url = self.url_for(path, params)
        with self.slots:
            self.stats.add(requests=1)
            response = self._send(url)
            complete = False
            try:
                if status_behaviour(response.status_code) is not Behaviour.OK:
                    raise self._status_error(response, url, required_tier)
                encoded = bool(response.headers.get("Content-Encoding"))
                length = response.headers.get("Content-Length")
                body = BodyStream(
                    response.raw,
                    url=url,
                    content_length=int(length) if length and not encoded else None,
                )
                yield HttpAnswer(body=body, headers=response.headers, url=url)
                complete = body.at_eof()
            finally:
                if complete:
                    response.raw.release_conn()  # fully read: keep the connection alive
                else:
                    response.close()

    def _send(self, url: str) -> requests.Response:
        try:
            return self.session.get(url, stream=True, timeout=self.timeout)
        except requests.ConnectTimeout as exc:
            raise TerminalUnreachable.at(
                self.base_url, api_version=self.api_version, url=url, cause="connect timeout"
            ) from exc
        except requests.ReadTimeout as exc:
            raise ReadTimedOut(
                f"no answer from {url} within {self.timeout[1]:g}s",
                url=url,
                advice="retried; raise thetadata.timeout_s if the terminal is just slow",
            ) from exc
        except requests.ConnectionError as exc:
            if _refused(exc):
                raise TerminalUnreachable.at(
                    self.base_url, api_version=self.api_version, url=url, cause="refused"
                ) from exc
            raise ConnectionLost(
                f"the connection to {url} broke before an answer ({exc})",
                url=url,
                advice="retried; check the terminal's console if this persists",
            ) from exc

    def _status_error(self, response: requests.Response, url: str, tier: Tier | None):
        try:
            text = response.raw.read(ERROR_BODY_BYTES, decode_content=True).decode(
                "utf-8", "replace"
            )
        except Exception:  # the error body is only a hint; its loss must not hide the status
            text = ""
        error = error_for_status(
            response.status_code,
            url=url,
            body=text,
            retry_after=response.headers.get(RETRY_AFTER_HEADER),
            required_tier=tier,
        )
        if isinstance(error, TerminalBug):
            log.error("ThetaTerminal bug answering GET %s: %s", url, text.strip()[:500])
        return error

    def close(self) -> None:
        self.session.close()
