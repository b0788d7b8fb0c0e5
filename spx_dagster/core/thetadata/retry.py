"""Retry policies by error type (tenacity) and the client's thread-safe counters.

Which errors are retried is decided by the error class (``ThetaDataError.retryable``); how often
by :class:`RetryPolicy`: most causes up to ``max_attempts`` with exponential backoff and full
jitter capped at ``backoff_max_s``; a 429's ``Retry-After`` is honoured (capped the same way);
"no terminal listening" is retried at most once more so a wrong URL fails within the timeout;
the terminal's GENERAL error a few times only.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from spx_dagster.core.thetadata.errors import (
    GeneralError,
    RateLimited,
    TerminalUnreachable,
    ThetaDataError,
)

log = logging.getLogger("spx_dagster.thetadata")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts and how long between them.

    Attributes:
        max_attempts: Attempts (first included) for retryable causes.
        backoff_max_s: Upper bound of any single wait, ``Retry-After`` included.
        backoff_base_s: First backoff ceiling; doubles per attempt up to ``backoff_max_s``.
        unreachable_attempts: Attempts when nothing listens at the URL.
        general_attempts: Attempts on the terminal's GENERAL error.
    """

    max_attempts: int = 6
    backoff_max_s: float = 60.0
    backoff_base_s: float = 0.5
    unreachable_attempts: int = 2
    general_attempts: int = 3

    def attempts_for(self, error: BaseException) -> int:
        if isinstance(error, TerminalUnreachable):
            return min(self.unreachable_attempts, self.max_attempts)
        if isinstance(error, GeneralError):
            return min(self.general_attempts, self.max_attempts)
        return self.max_attempts

    def backoff_s(self, error: BaseException, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based): full jitter, or Retry-After."""
        if isinstance(error, RateLimited) and error.retry_after_s is not None:
            return min(error.retry_after_s, self.backoff_max_s)
        ceiling = min(
            self.backoff_max_s, min(self.backoff_base_s, self.backoff_max_s) * 2 ** (attempt - 1)
        )
        return random.uniform(0.0, ceiling)


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, ThetaDataError) and error.retryable


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    describe: str,
    on_retry: Callable[[ThetaDataError, int, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails permanently or exhausts its cause's attempts.

    Args:
        attempt: One whole try; it must clean up after itself when it raises.
        policy: Attempts and waits.
        describe: What is being tried, for the log.
        on_retry: Called before each wait with (error, failed attempt number, wait seconds);
            may block (e.g. to wait for the terminal to reconnect).

    Raises:
        ThetaDataError: The last error once retries are over, or the first permanent one.
    """

    def stop(state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        return error is None or state.attempt_number >= policy.attempts_for(error)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.backoff_s(error, state.attempt_number) if error else 0.0

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception()
        seconds = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "retry %d/%d of %s in %.2fs after %s: %s",
            state.attempt_number,
            policy.attempts_for(error) - 1,
            describe,
            seconds,
            error.category,
            error,
        )
        if on_retry is not None:
            on_retry(error, state.attempt_number, seconds)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable),
        stop=stop,
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)


class ClientStats:
    """Thread-safe counters of one client: requests, retries by cause, bytes, rows and more."""

    FIELDS = ("requests", "bytes", "rows", "no_data", "malformed_rows", "extra_columns", "splits")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                if name not in self.FIELDS:
                    raise KeyError(name)
                self._counts[name] += value

    def retried(self, cause: str) -> None:
        with self._lock:
            self._retries[cause] += 1

    def __getattr__(self, name: str) -> int:
        if name in ClientStats.FIELDS:
            with self._lock:
                return self._counts[name]
        raise AttributeError(name)

    @property
    def retries_by_cause(self) -> dict[str, int]:
        with self._lock:
            return dict(self._retries)

    def snapshot(self) -> dict[str, object]:
        """All counters as plain data (for logs, manifests and ``--json``)."""
        with self._lock:
            out: dict[str, object] = {name: self._counts[name] for name in self.FIELDS}
            out["retries_by_cause"] = dict(self._retries)
            return out
