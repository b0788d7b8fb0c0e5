"""Typed errors for everything that can go wrong between us and ThetaTerminal.

One class per behaviour: an HTTP status code of the terminal maps to a class through the code's
vendor name (``vendor.STATUS_CODES``), so no status number is written here. Every error carries
``status`` (HTTP status or None), ``url`` (the request), ``category`` (a short snake name the error
history groups by), ``retryable`` and a message that ends with what to do about it.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from urllib.parse import urlsplit

from spx_dagster.core.thetadata.vendor import (
    STATUS_CODES,
    TERMINAL_JAR,
    Behaviour,
    Tier,
    status_behaviour,
)


class ThetaDataError(Exception):
    """Base of every client error.

    Attributes:
        status: HTTP status the terminal answered, or None for transport and parse errors.
        url: The request URL (with its query).
        category: Short snake-case name used by the error history (e.g. ``rate_limited``).
        retryable: Whether the client's retry policy retries it.
        advice: What the user should do, also the end of ``str(error)``.
    """

    category = "error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        advice: str = "",
    ) -> None:
        self.status = status
        self.url = url
        self.advice = advice
        self.detail = message
        text = message if not advice else f"{message}: {advice}"
        super().__init__(text)

    def __reduce__(self):  # keep the keyword arguments when pickled across processes
        return (_rebuild, (type(self), self.detail, self.url, self.status, self.advice))


def _rebuild(cls, message, url, status, advice):
    error = cls.__new__(cls)
    ThetaDataError.__init__(error, message, url=url, status=status, advice=advice)
    return error


# --------------------------------------------------------------------------------------------
# Answers of the terminal (HTTP status codes)
# --------------------------------------------------------------------------------------------
class StatusError(ThetaDataError):
    """The terminal answered with a status code other than success."""


class NotImplementedByTerminal(StatusError):
    category = "not_implemented"


class WrongApiVersion(StatusError):
    category = "wrong_api_version"


class RateLimited(StatusError):
    category = "rate_limited"
    retryable = True
    retry_after_s: float | None = None


class GeneralError(StatusError):
    category = "general"
    retryable = True


class PermissionDenied(StatusError):
    category = "permission"


class NoData(StatusError):
    """Nothing exists for the request; the client turns it into an empty answer."""

    category = "no_data"


class InvalidParams(StatusError):
    category = "invalid_params"


class Disconnected(StatusError):
    category = "disconnected"
    retryable = True


class TerminalParseError(StatusError):
    category = "terminal_parse"


class WrongIp(StatusError):
    category = "wrong_ip"


class PageExpired(StatusError):
    """v2 only: a page expired; the original request is re-issued."""

    category = "page_expired"
    retryable = True


class SessionConflict(StatusError):
    category = "session_conflict"


class LargeRequest(StatusError):
    """Too large for one request; the client splits it and only raises when it cannot."""

    category = "large_request"


class ServerStarting(StatusError):
    category = "server_starting"
    retryable = True


class TerminalBug(StatusError):
    category = "terminal_bug"


class ServerError(StatusError):
    """A 5xx that is not one of ThetaTerminal's own codes (a proxy, a crash)."""

    category = "server_error"
    retryable = True


class UnexpectedStatus(StatusError):
    category = "unexpected_status"


_CLASS_BY_VENDOR_NAME: dict[str, type[StatusError]] = {
    "NO_IMPL": NotImplementedByTerminal,
    "GONE": WrongApiVersion,
    "OS_LIMIT": RateLimited,
    "GENERAL": GeneralError,
    "PERMISSION": PermissionDenied,
    "NO_DATA": NoData,
    "INVALID_PARAMS": InvalidParams,
    "DISCONNECTED": Disconnected,
    "TERMINAL_PARSE": TerminalParseError,
    "WRONG_IP": WrongIp,
    "NO_PAGE_FOUND": PageExpired,
    "INVALID_SESSION_ID": SessionConflict,
    "LARGE_REQUEST": LargeRequest,
    "SERVER_STARTING": ServerStarting,
    "UNCAUGHT_ERROR": TerminalBug,
}


def error_for_status(
    status: int,
    *,
    url: str,
    body: str = "",
    retry_after: str | None = None,
    required_tier: Tier | None = None,
) -> StatusError:
    """The typed error for a non-success answer.

    Args:
        status: The HTTP status code.
        url: The request URL, named in the message.
        body: The start of the answer's body (the terminal often explains itself there).
        retry_after: The ``Retry-After`` header, honoured on rate limiting.
        required_tier: The subscription tier the endpoint needs, named on permission errors.
    """
    vendor = STATUS_CODES.get(status)
    said = f" (terminal said: {body.strip()[:200]})" if body.strip() else ""
    if vendor is None:
        cls: type[StatusError] = (
            ServerError if status_behaviour(status) is Behaviour.RETRY else UnexpectedStatus
        )
        advice = (
            "retried with backoff; check the terminal's console if it persists"
            if cls is ServerError
            else "check thetadata.base_url points at ThetaTerminal"
        )
        return cls(f"HTTP {status} from {url}{said}", url=url, status=status, advice=advice)
    cls = _CLASS_BY_VENDOR_NAME.get(vendor.name, UnexpectedStatus)
    meaning = vendor.meaning
    if cls is PermissionDenied and required_tier is not None:
        meaning = f"{meaning}; this data needs the {required_tier.value} tier or above"
    error = cls(
        f"ThetaTerminal answered {status} {vendor.name} ({meaning}) for {url}{said}",
        url=url,
        status=status,
        advice=vendor.advice,
    )
    if isinstance(error, RateLimited):
        error.retry_after_s = parse_retry_after(retry_after)
    return error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------------------------
# Transport and content
# --------------------------------------------------------------------------------------------
class TerminalUnreachable(ThetaDataError):
    """Nothing accepted the TCP connection (refused or connect timeout): no terminal runs there."""

    category = "unreachable"
    retryable = True  # once or twice only: see retry.RetryPolicy

    @classmethod
    def at(cls, base_url: str, *, api_version: str, url: str | None = None, cause: str = ""):
        """The error for ``base_url`` with how to start a terminal there."""
        port = urlsplit(base_url).port or ""
        jar = TERMINAL_JAR.get(api_version, TERMINAL_JAR["v3"])
        why = f" [{cause}]" if cause else ""
        return cls(
            f"no ThetaTerminal listening at {base_url}",
            url=url or base_url,
            advice=(
                f"start ThetaTerminal (java -jar {jar}) or the built-in simulator "
                f"(spx-data simulator --port {port}), or set thetadata.base_url{why}"
            ),
        )


class ConnectionLost(ThetaDataError):
    """The connection was reset or closed before the answer's status line arrived."""

    category = "connection"
    retryable = True


class ReadTimedOut(ThetaDataError):
    """The terminal sent nothing for longer than thetadata.timeout_s."""

    category = "timeout"
    retryable = True


class TruncatedResponse(ThetaDataError):
    """The body ended early: a dropped connection is never taken for a complete answer."""

    category = "truncated"
    retryable = True


class MalformedResponse(ThetaDataError):
    """The body could not be parsed as a whole (not a bad row: those are skipped and counted)."""

    category = "malformed"
    retryable = True


class SchemaError(ThetaDataError):
    """An expected column is missing: the wire format changed; retrying cannot help."""

    category = "schema"
