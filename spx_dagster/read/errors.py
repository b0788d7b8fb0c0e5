"""What can go wrong reading the history; every message names the value, why and what to do.

``QueryError`` and ``ChainError`` are the caller's to fix (a bad query, a bad date, minute or
expiration: the CLI exits 2); ``NotPublished`` is a valid session with nothing committed to read
(exit 1, the message says how to publish it); ``FilesChanged`` is a committed file that vanished
twice in a row while being read, as a re-publish or unpublish replaced it (exit 1).
"""

from __future__ import annotations


class ReadError(Exception):
    """A read of the history that cannot be answered; the message says why and what to do."""


class QueryError(ReadError, ValueError):
    """A query that cannot run: an unknown table or column, a syntax error, a write."""


class ChainError(ReadError, ValueError):
    """A chain request that cannot be answered: not a session, a minute outside it, ..."""


class NotPublished(ReadError, LookupError):
    """A session that is valid but has nothing committed to read."""


class FilesChanged(ReadError, OSError):
    """Committed files disappeared while they were read, twice in a row."""
