"""One name per kind of failure, so that runs, the error history and retries speak alike.

A category (``core/failure_categories.FailureCategory``) is recorded on a failed run
(``spx/error_category``) and read back by ``spx-data errors``, ``gaps`` and ``retry``. ThetaData
errors carry their own category (``core/thetadata/errors.py``); everything else is mapped here.
"""

from __future__ import annotations

import errno

from spx_dagster.core.calendar import SessionNotClosed
from spx_dagster.core.failure_categories import FailureCategory
from spx_dagster.core.session_fetch import FetchInterrupted
from spx_dagster.core.session_stages import StageInputMissing
from spx_dagster.core.storage import (
    InsufficientDiskSpace,
    ManifestError,
    PublishError,
    SessionLocked,
)
from spx_dagster.core.thetadata.errors import ThetaDataError
from spx_dagster.core.validation import SchemaBreak

# Longest error message kept on a run tag (tags are indexed strings, not documents).
MESSAGE_TAG_CHARS = 800


def failure_category(error: BaseException) -> FailureCategory:
    """The category of ``error`` (``unknown`` for a programming error)."""
    if isinstance(error, ThetaDataError):
        return FailureCategory.parse(error.category)
    if isinstance(error, SessionNotClosed):
        return FailureCategory.NOT_CLOSED
    if isinstance(error, SchemaBreak):
        return FailureCategory.SCHEMA
    if isinstance(error, InsufficientDiskSpace):
        return FailureCategory.DISK_FULL
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return FailureCategory.DISK_FULL
    if isinstance(error, PermissionError):
        return FailureCategory.PERMISSION_DENIED_FS
    if isinstance(error, SessionLocked):
        return FailureCategory.LOCKED
    if isinstance(error, StageInputMissing):
        return FailureCategory.MISSING_INPUT
    if isinstance(error, FetchInterrupted | KeyboardInterrupt):
        return FailureCategory.INTERRUPTED
    if isinstance(error, PublishError | ManifestError):
        return FailureCategory.PUBLISH
    if isinstance(error, OSError):
        return FailureCategory.IO
    return FailureCategory.UNKNOWN


def is_transient(category: str) -> bool:
    """Whether the same work is expected to succeed later without a change by the user."""
    return FailureCategory.parse(category).transient


def short_message(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MESSAGE_TAG_CHARS else text[: MESSAGE_TAG_CHARS - 1] + "…"
