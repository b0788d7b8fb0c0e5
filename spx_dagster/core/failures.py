"""One name per kind of failure, so that runs, the error history and retries speak alike.

A category is a short snake-case word recorded on a failed run (``spx/error_category``) and read
back by ``spx-data errors``, ``gaps`` and ``retry``. ThetaData errors carry their own category
(``core/thetadata/errors.py``); everything else is named here.
"""

from __future__ import annotations

import errno

from spx_dagster.core.history import TRANSIENT_CATEGORIES
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


def failure_category(error: BaseException) -> str:
    """The category of ``error`` (``unknown`` for a programming error)."""
    if isinstance(error, ThetaDataError):
        return error.category
    if isinstance(error, SchemaBreak):
        return "schema"
    if isinstance(error, InsufficientDiskSpace):
        return "disk_full"
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    if isinstance(error, PermissionError):
        return "permission_denied_fs"
    if isinstance(error, SessionLocked):
        return "locked"
    if isinstance(error, StageInputMissing):
        return "missing_input"
    if isinstance(error, FetchInterrupted | KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, PublishError | ManifestError):
        return "publish"
    if isinstance(error, OSError):
        return "io"
    return "unknown"


def is_transient(category: str) -> bool:
    """Whether the same work is expected to succeed later without a change by the user."""
    return category in TRANSIENT_CATEGORIES


def short_message(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MESSAGE_TAG_CHARS else text[: MESSAGE_TAG_CHARS - 1] + "…"
