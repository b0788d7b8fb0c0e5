"""The config store: stored values and their full change history in one SQLite file.

Every change (set or reset) is one transaction that updates the value and appends a history row
(key, per-key version, old and new value, when, who, source), so a process killed at any instant
leaves either the old state or the new one. The schema is versioned with ``PRAGMA user_version``;
a store written by an older version is migrated in place, inside a transaction, never dropped.
A store written by a newer version is left untouched and refused with a clear message.

Values are kept in their text form (``settings.format_value``); known keys are checked by the
settings model before they are written, so the store never holds a value that cannot be parsed.
Keys this version does not know (written by another version) are kept and listed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spx_dagster.core.config.settings import ConfigError, format_value, key_spec, parse_value

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 10.0
HOME_DIR_MODE = 0o750


class StoreError(ConfigError):
    """The store file cannot be read or written; the message names the file and what to do."""


@dataclass(frozen=True)
class StoredValue:
    """A key's current stored value and the change that wrote it."""

    key: str
    value: str
    version: int
    updated_at: str
    updated_by: str
    source: str


@dataclass(frozen=True)
class Change:
    """One accepted change: ``action`` is ``set``, ``reset`` or ``migrate``."""

    id: int
    key: str
    version: int
    action: str
    old_value: str | None
    new_value: str | None
    changed_at: str
    changed_by: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_user() -> str:
    """``user@host`` of this process, for the history's ``changed_by``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers running as a bare uid)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Schema and migrations
# ---------------------------------------------------------------------------------------------
# Schema 1 (the first release) kept only current values: config(key, value, updated_at).
# Schema 2 adds per-key versions and the change history.
_SCHEMA_2 = """
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    source     TEXT NOT NULL
);
CREATE TABLE changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('set', 'reset', 'migrate')),
    old_value  TEXT,
    new_value  TEXT,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    source     TEXT NOT NULL
);
CREATE INDEX changes_by_key ON changes (key, version);
"""


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Keep every schema-1 value as version 1 of its key, with a ``migrate`` history row."""
    for statement in _SCHEMA_2.split(";"):
        if statement.strip():
            conn.execute(statement)
    who = "schema 1 (unknown)"
    rows = conn.execute("SELECT key, value, updated_at FROM config ORDER BY key").fetchall()
    for key, value, updated_at in rows:
        conn.execute(
            "INSERT INTO settings VALUES (?, ?, 1, ?, ?, 'migration')",
            (key, value, updated_at, who),
        )
        conn.execute(
            "INSERT INTO changes (key, version, action, old_value, new_value, changed_at,"
            " changed_by, source) VALUES (?, 1, 'migrate', NULL, ?, ?, ?, 'migration')",
            (key, value, updated_at, who),
        )
    conn.execute("DROP TABLE config")


# from-version -> the step that brings a store to from-version + 1
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_2.split(";"):
        if statement.strip():
            conn.execute(statement)


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------
class ConfigStore:
    """Stored configuration values with versioned history, in the SQLite file ``path``.

    Connections are short-lived (one per call) so that several processes (CLI, daemon, runs)
    can share the file; writers take SQLite's write lock up front (``BEGIN IMMEDIATE``) and wait
    up to ``busy_timeout_s`` for each other.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s

    def __repr__(self) -> str:
        return f"ConfigStore({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection | None]:
        if not self.path.exists() and not create:
            yield None
            return
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=HOME_DIR_MODE)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory of the config store {self.path} ({exc.strerror})",
                    fix="Set SPX_DATA_HOME to a writable directory.",
                ) from None
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._store_error(exc) from None
        try:
            conn.execute("PRAGMA synchronous = FULL")
            self._ensure_schema(conn)
            yield conn
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from None
        finally:
            conn.close()

    def _store_error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"the config store {self.path} cannot be used ({exc})",
            fix=(
                "If another spx-data command is changing the configuration, retry; if the file "
                "is damaged, move it aside (the defaults apply) and set your keys again."
            ),
        )

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the config store {self.path} was written by a newer spx-data (schema "
                f"{version}; this version knows up to {SCHEMA_VERSION})",
                fix="Upgrade spx-data, or point SPX_DATA_HOME at another directory.",
            )
        with self._transaction(conn):
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if tables:
                    raise StoreError(
                        f"{self.path} is a SQLite file but not an spx-data config store",
                        fix="Move it aside or point SPX_DATA_HOME at another directory.",
                    )
                _create(conn)
            else:
                while version < SCHEMA_VERSION:
                    MIGRATIONS[version](conn)
                    version += 1
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def schema_version(self) -> int:
        """The schema version of the file (0 when it does not exist yet)."""
        if not self.path.exists():
            return 0
        with self._connect(create=False) as conn:
            assert conn is not None
            return conn.execute("PRAGMA user_version").fetchone()[0]

    # -- reads ---------------------------------------------------------------------------------
    def get(self, key: str) -> StoredValue | None:
        """The stored value of ``key``, or None when it is not stored (the default applies)."""
        return self.list().get(key)

    def list(self) -> dict[str, StoredValue]:
        """Every stored value by key, including keys this version does not know."""
        with self._connect(create=False) as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                "SELECT key, value, version, updated_at, updated_by, source FROM settings"
                " ORDER BY key"
            ).fetchall()
        return {row[0]: StoredValue(*row) for row in rows}

    def history(self, key: str | None = None, *, limit: int | None = None) -> list[Change]:
        """Accepted changes, oldest first (the last ``limit`` of them when given)."""
        with self._connect(create=False) as conn:
            if conn is None:
                return []
            query = "SELECT * FROM changes"
            args: tuple[Any, ...] = ()
            if key is not None:
                query += " WHERE key = ?"
                args = (key,)
            query += " ORDER BY id DESC"
            if limit is not None:
                query += " LIMIT ?"
                args = (*args, int(limit))
            rows = conn.execute(query, args).fetchall()
        return [Change(*row) for row in reversed(rows)]

    # -- writes --------------------------------------------------------------------------------
    def set(
        self, key: str, value: Any, *, source: str = "api", who: str | None = None
    ) -> Change | None:
        """Store ``value`` for ``key`` (checked by the settings model); None if unchanged.

        Raises:
            UnknownKeyError: ``key`` is not a configuration key.
            ConfigError: ``value`` is not valid for ``key`` (nothing is written).
        """
        key_spec(key)
        return self.set_many({key: value}, source=source, who=who)[key]

    def set_many(
        self, values: Mapping[str, Any], *, source: str = "api", who: str | None = None
    ) -> dict[str, Change | None]:
        """Store several keys in one transaction: all of them or none (``set`` for each)."""
        texts = {key: format_value(key, parse_value(key, value)) for key, value in values.items()}
        with self._connect(create=True) as conn:
            assert conn is not None
            with self._transaction(conn):
                return {
                    key: self._write(conn, key, text, "set", source, who or current_user())
                    for key, text in texts.items()
                }

    def reset(
        self, key: str | None = None, *, source: str = "api", who: str | None = None
    ) -> list[Change]:
        """Remove ``key``'s stored value (every key when None) so the default applies again."""
        with self._connect(create=False) as conn:
            if conn is None:
                return []
            with self._transaction(conn):
                if key is None:
                    keys = [r[0] for r in conn.execute("SELECT key FROM settings ORDER BY key")]
                else:
                    keys = [key]
                changes = [
                    self._write(conn, k, None, "reset", source, who or current_user()) for k in keys
                ]
        return [c for c in changes if c is not None]

    def _write(
        self,
        conn: sqlite3.Connection,
        key: str,
        new: str | None,
        action: str,
        source: str,
        who: str,
    ) -> Change | None:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        old = None if row is None else row[0]
        if old == new:
            return None
        version = (
            1
            + conn.execute(
                "SELECT coalesce(max(version), 0) FROM changes WHERE key = ?", (key,)
            ).fetchone()[0]
        )
        at = _now()
        if new is None:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            conn.execute(
                "INSERT INTO settings VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value, version = excluded.version,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by,"
                " source = excluded.source",
                (key, new, version, at, who, source),
            )
        return self._record(conn, Change(0, key, version, action, old, new, at, who, source))

    def _record(self, conn: sqlite3.Connection, change: Change) -> Change:
        """Append ``change`` to the history (same transaction as the value it describes)."""
        cursor = conn.execute(
            "INSERT INTO changes (key, version, action, old_value, new_value, changed_at,"
            " changed_by, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.key,
                change.version,
                change.action,
                change.old_value,
                change.new_value,
                change.changed_at,
                change.changed_by,
                change.source,
            ),
        )
        return dataclasses.replace(change, id=cursor.lastrowid or 0)
