"""Every kind of failure a session run can end with, and what follows from each.

One enum, so that the run tag (``spx/error_category``), ``spx-data errors``, ``gaps``, ``retry``,
the gap sensor and the advice printed by ``process`` all speak of a failure the same way. A member
carries:

- ``transient``: the same work is expected to succeed later without a change by the user, so
  ``retry`` (and the gap sensor) may run it again without ``--force``;
- ``strategy``: what a retry does differently (or what must change first);
- ``attempt``: whether the run used up one of ``retry.max_attempts`` and counts in error rates.
  A run refused before it did anything (the session has not closed) and a run that was paused or
  canceled are not attempts and not failures.

``next_step`` builds the sentence a user reads after a failure from these, so the advice always
matches what ``spx-data retry`` will then do. ThetaData errors carry their category's value
(``core/thetadata/errors.py``); ``core/failures.py`` maps every other exception to a member.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum


class FailureCategory(StrEnum):
    transient: bool
    strategy: str
    attempt: bool

    def __new__(cls, value: str, transient: bool, strategy: str, attempt: bool = True):
        member = str.__new__(cls, value)
        member._value_ = value
        member.transient = transient
        member.strategy = strategy
        member.attempt = attempt
        return member

    # --- the terminal answered, but not with data -------------------------------------------
    RATE_LIMITED = (
        "rate_limited",
        True,
        "retry with thetadata.concurrency lowered to 1 (the terminal throttled us)",
    )
    DISCONNECTED = ("disconnected", True, "wait for the terminal to reconnect, then retry")
    SERVER_STARTING = ("server_starting", True, "wait for the terminal to finish starting")
    SERVER_ERROR = ("server_error", True, "retry; staged complete answers are reused")
    GENERAL = ("general", True, "retry; staged complete answers are reused")
    PAGE_EXPIRED = ("page_expired", True, "retry; the expired page is requested again")
    LARGE_REQUEST = ("large_request", True, "retry with requests split per expiration")
    TERMINAL_BUG = ("terminal_bug", True, "retry; staged complete answers are reused")
    PERMISSION = ("permission", False, "needs a subscription that includes this dataset")
    INVALID_PARAMS = ("invalid_params", False, "needs a ThetaTerminal update or a request fix")
    WRONG_IP = ("wrong_ip", False, "needs thetadata.base_url on the host the terminal expects")
    SESSION_CONFLICT = ("session_conflict", False, "needs the other ThetaTerminal stopped")
    WRONG_API_VERSION = (
        "wrong_api_version",
        False,
        "needs thetadata.api_version to match the terminal",
    )
    NOT_IMPLEMENTED = (
        "not_implemented",
        False,
        "needs a ThetaTerminal version that implements the endpoint",
    )
    TERMINAL_PARSE = ("terminal_parse", False, "needs a ThetaTerminal update or a request fix")
    UNEXPECTED_STATUS = (
        "unexpected_status",
        False,
        "needs a look at the status the terminal answered (spx-data errors shows it)",
    )
    NO_DATA = ("no_data", False, "nothing to retry: the vendor has no data for the request")
    # --- the connection ---------------------------------------------------------------------
    TRUNCATED = ("truncated", True, "retry; staged complete answers are reused")
    CONNECTION = ("connection", True, "retry; staged complete answers are reused")
    TIMEOUT = ("timeout", True, "retry; staged complete answers are reused")
    UNREACHABLE = ("unreachable", True, "retry once the terminal answers (spx-data status)")
    MALFORMED = ("malformed", False, "needs a look at the answer the terminal sent")
    # --- this machine -----------------------------------------------------------------------
    CRASH = ("crash", True, "retry from the staged answers of the crashed run")
    INTERRUPTED = ("interrupted", True, "resume from the staged answers")
    DISK_FULL = ("disk_full", True, "retry after freeing disk space (storage.min_free_gb)")
    LOCKED = ("locked", True, "retry after the other run of this session finishes")
    MISSING_INPUT = ("missing_input", True, "re-run the whole session (staged answers are gone)")
    IO = ("io", True, "retry; staged complete answers are reused")
    PERMISSION_DENIED_FS = (
        "permission_denied_fs",
        False,
        "needs write access to storage.output_dir and storage.temp_dir",
    )
    SCHEMA = ("schema", False, "needs an spx-data update: the terminal's columns changed")
    PUBLISH = ("publish", False, "needs a look at the publish error (disk, permissions)")
    CORRUPT = ("corrupt", True, "re-publish the session from a fresh fetch")
    UNKNOWN = ("unknown", True, "retry from the staged answers")
    # --- not failures -----------------------------------------------------------------------
    NOT_CLOSED = (
        "not_closed",
        False,
        "wait for the session's end-of-day report (17:15 ET), then process it",
        False,
    )
    CANCELED = (
        "canceled",
        True,
        "resume from the staged answers (the run was paused or canceled, not failed)",
        False,
    )

    @classmethod
    def parse(cls, value: str | None) -> FailureCategory:
        """The member named ``value``; ``unknown`` for nothing or a name no release wrote."""
        try:
            return cls(value or cls.UNKNOWN)
        except ValueError:
            return cls.UNKNOWN

    @property
    def retry_needs_force(self) -> bool:
        """``spx-data retry`` refuses this category without ``--force``."""
        return not self.transient

    def next_step(self, session: dt.date | str) -> str:
        """What to do next, naming the exact command ``retry`` will accept for ``session``."""
        if self is FailureCategory.NOT_CLOSED:
            return f"{self.strategy}: `spx-data process {session}`"
        if self is FailureCategory.NO_DATA:
            return self.strategy
        if self.retry_needs_force:
            return f"{self.strategy}; then `spx-data retry {session} --force`"
        return f"{self.strategy}: `spx-data retry {session}`"


TRANSIENT_CATEGORIES = frozenset(c.value for c in FailureCategory if c.transient)
NOT_ATTEMPTS = frozenset(c.value for c in FailureCategory if not c.attempt)
