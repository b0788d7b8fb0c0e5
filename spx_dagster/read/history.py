"""``History``: SQL, datasets, sessions and option chains over the committed files.

One in-process DuckDB connection (in memory) holds the views ``greeks``, ``eod``,
``open_interest``, ``quote``, ``greeks_eod`` and the tables ``sessions``, ``files``, ``quality``,
built by ``core.catalog.build_catalog`` from the committed manifests. Before every query the
manifests directory is listed (one ``scandir``); when a session was published, re-published or
removed since, the views are rebuilt, so each query reads the committed state at its start.

A committed file can still vanish between that listing and DuckDB opening it (the session is
unpublished or re-published at that moment): the query is then run once more on a fresh snapshot
of the manifests, and fails with ``FilesChanged`` if it happens again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from spx_dagster.core.catalog import TABLES, build_catalog, dataset_select
from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage.committed import Committed, manifests_stamp, read_committed
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.core.thetadata.vendor import EXCHANGE_TIMEZONE
from spx_dagster.read.errors import FilesChanged, QueryError

T = TypeVar("T")
BATCH_ROWS = 100_000
# Statements that only read: a query, its plan, and DuckDB's informational pragmas.
READ_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA")

_MISSING_TABLE = re.compile(r'Table with name "?([^"\s!]+)"? does not exist', re.IGNORECASE)
_MISSING_COLUMN = (
    re.compile(r'Referenced column "([^"]+)" not found', re.IGNORECASE),
    re.compile(r'does not have a column named "([^"]+)"', re.IGNORECASE),
)


def open_history(output_dir: Path | str | None = None) -> History:
    """The published history at ``output_dir`` (default: ``storage.output_dir`` of the settings,
    resolved as every ``spx-data`` command resolves it: ``SPX_DATA_HOME``, the stored
    configuration, ``SPX_DATA_*`` variables)."""
    if output_dir is None:
        from spx_dagster.core.config import load_settings

        output_dir = load_settings().storage.output_dir
    return History(OutputLayout.of(output_dir).root)


def as_date(value: dt.date | str, what: str = "date") -> dt.date:
    """A date from a ``datetime.date`` or text (``YYYY-MM-DD``); QueryError names a bad one."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    from spx_dagster.core.calendar import DateError, parse_date

    try:
        return parse_date(str(value))
    except DateError as error:
        raise QueryError(f"{what}: {error}") from None


class History:
    """The committed sessions of one output directory, read through DuckDB in this process."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)
        self._connection = duckdb.connect()
        self._connection.execute("SET enable_progress_bar = false")
        # Timestamps come back in the exchange's time zone, as the files store them.
        self._connection.execute(f"SET TimeZone = '{EXCHANGE_TIMEZONE}'")
        self._lock = threading.RLock()
        self._stamp: tuple | None = None
        self._committed: Committed | None = None

    def __repr__(self) -> str:
        return f"History({str(self.output_dir)!r})"

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -----------------------------------------------------------------------------------------
    # Snapshot of the committed state
    # -----------------------------------------------------------------------------------------
    def committed(self, *, force: bool = False) -> Committed:
        """The committed sessions now; the views are rebuilt when the manifests changed."""
        with self._lock:
            stamp = manifests_stamp(self.output_dir)
            if force or self._committed is None or stamp != self._stamp:
                committed = read_committed(self.output_dir)
                self._connection.execute("BEGIN TRANSACTION")
                try:
                    build_catalog(self._connection, committed)
                    self._connection.execute("COMMIT")
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._stamp, self._committed = stamp, committed
            return self._committed

    def retrying(self, action: Callable[[], T], *, snapshot: bool = True) -> T:
        """Run ``action``; once more if a committed file vanished meanwhile (on a fresh snapshot
        of the manifests when ``snapshot``; an action that reads its own manifest re-reads it).
        """
        with self._lock, _interrupts():
            with contextlib.suppress(duckdb.IOException, FileReplaced):
                if snapshot:
                    self.committed()  # creating a view checks that its files exist
                return action()
            try:
                if snapshot:
                    self.committed(force=True)
                return action()
            except (duckdb.IOException, FileReplaced) as error:
                raise FilesChanged(
                    f"committed files changed while they were read, twice in a row (a session "
                    f"of {self.output_dir} is being re-published or removed): {first_line(error)}"
                    f"; run the query again when the publish is done, or run `spx-data verify "
                    f"--all` if it keeps failing (a damaged file fails the same way)"
                ) from None

    def query_files(self, sql: str) -> pa.Table:
        """Run SQL of our own (over files named in it) as Arrow; IO errors propagate for
        ``retrying``."""
        with self._lock:
            return self._connection.sql(sql).to_arrow_table()

    # -----------------------------------------------------------------------------------------
    # Queries
    # -----------------------------------------------------------------------------------------
    def _relation(self, query: str, params: Sequence[Any] | None = None) -> Any:
        check_read_only(self._connection, query)
        try:
            return self._connection.sql(query, params=params)
        except duckdb.IOException:
            raise
        except duckdb.Error as error:
            raise self._query_error(error, query) from None

    def _query_error(self, error: duckdb.Error, query: str) -> Exception:
        """What a DuckDB error of ``query`` becomes: ``FileReplaced`` (retried) when a listed
        file changed under it, else the explained query error."""
        if replaced_while_read(error):
            return FileReplaced(str(error))
        return self.explain_error(error, query)

    def _fetch(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        def run() -> pa.Table:
            relation = self._relation(query, params)
            if relation is None:
                return pa.table({})
            try:
                return relation.to_arrow_table()
            except duckdb.IOException:
                raise
            except duckdb.Error as error:
                raise self._query_error(error, query) from None

        return self.retrying(run)

    def sql(self, query: str) -> pa.Table:
        """The result of one read-only DuckDB query over the views and tables, as Arrow."""
        return self._fetch(query)

    def batches(
        self, query: str, *, batch_rows: int = BATCH_ROWS
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The result of ``query`` as a stream of record batches (bounded memory).

        The query starts (and is retried once if a file vanished) before this returns; a file
        that vanishes later in the stream raises ``FilesChanged`` from the iterator.
        """

        def start() -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
            relation = self._relation(query)
            if relation is None:
                return pa.schema([]), iter(())
            try:
                reader = relation.to_arrow_reader(batch_rows)
            except duckdb.IOException:
                raise
            except duckdb.Error as error:
                raise self._query_error(error, query) from None
            try:
                # The query runs on DuckDB's threads: its error may come with the first batch.
                first = next(iter(reader), None)
            except (pa.ArrowException, OSError) as error:
                if replaced_while_read(error):
                    raise FileReplaced(str(error)) from None
                raise _stream_error(error) from None
            return reader.schema, self._rest(first, reader)

        return self.retrying(start)

    def _rest(
        self, first: pa.RecordBatch | None, reader: pa.RecordBatchReader
    ) -> Iterator[pa.RecordBatch]:
        if first is None:
            return
        yield first
        try:
            with _interrupts():
                yield from reader
        except duckdb.IOException as error:
            raise FilesChanged(
                f"a committed file changed while the result was being written (a session is "
                f"being re-published or removed): {first_line(error)}; run the query again"
            ) from None
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except duckdb.Error as error:
            raise _stream_error(error) from None
        except (pa.ArrowException, OSError) as error:
            raise _stream_error(error) from None

    def sessions(self) -> pa.Table:
        """One row per committed session (status, rows, bytes, quality, durations, ...)."""
        return self._fetch("SELECT * FROM sessions ORDER BY session")

    def dataset(
        self,
        name: str,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> pa.Table:
        """Rows of one dataset over the sessions in [start, end], as Arrow.

        Args:
            name: ``greeks``, ``eod``, ``open_interest``, ``quote`` or ``greeks_eod``.
            start, end: first and last session (dates or ``YYYY-MM-DD``), both inclusive.
            columns: the columns to read (default all, ``date`` included).
            filter: a SQL condition on the columns, e.g. ``"root = 'SPXW' AND delta > 0.4"``.
        """
        if name not in DATASETS:
            raise QueryError(f"no dataset named {name!r}; datasets: {', '.join(DATASETS)}")
        first = as_date(start, "start") if start is not None else None
        last = as_date(end, "end") if end is not None else None
        if first and last and first > last:
            raise QueryError(f"start {first} comes after end {last}: the range is reversed")
        known = self.columns(name)
        if columns is not None:
            unknown = [c for c in columns if c not in known]
            if unknown:
                raise QueryError(
                    f"{name} has no column {unknown[0]!r}; its columns: {', '.join(known)}"
                )
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        where = f" WHERE ({filter})" if filter else ""

        def query() -> str:
            paths = [f.path for f in self.committed().files(name, start=first, end=last)]
            return f"SELECT {selected} FROM ({dataset_select(name, paths)}) AS {name}{where}"

        return self.retrying(lambda: self._fetch_now(query(), name))

    def _fetch_now(self, query: str, table: str) -> pa.Table:
        try:
            return self._connection.sql(query).to_arrow_table()
        except duckdb.IOException:
            raise
        except duckdb.Error as error:
            raise self.explain_error(error, f"SELECT * FROM {table}") from None

    def chain(
        self,
        date: dt.date | str,
        at: dt.time | str | None = None,
        root: str | None = None,
        expiration: dt.date | str | None = None,
        *,
        dte: int | None = None,
    ) -> pa.Table:
        """The option chain of one session at one minute (see ``read.chain``), as Arrow."""
        from spx_dagster.read.chain import chain_table

        return chain_table(self, date, at=at, root=root, expiration=expiration, dte=dte)

    # -----------------------------------------------------------------------------------------
    # What exists, for errors that list it
    # -----------------------------------------------------------------------------------------
    def columns(self, name: str) -> list[str]:
        """The columns of a table or view, in order."""
        if name in DATASETS:
            return [f.name for f in DATASETS[name].published_schema] + ["date"]
        with self._lock:
            self.committed()
            rows = self._connection.execute(f'DESCRIBE "{name}"').fetchall()
        return [row[0] for row in rows]

    def explain_error(self, error: duckdb.Error, query: str) -> QueryError:
        """DuckDB's error as a QueryError that names what is wrong and lists what exists."""
        if isinstance(error, duckdb.InterruptException):
            raise KeyboardInterrupt  # Ctrl-C during a query: the caller's interrupt, not an error
        message = str(error)
        table = _MISSING_TABLE.search(message)
        if isinstance(error, duckdb.CatalogException) and table:
            return QueryError(
                f"no table or view named {table.group(1)!r}; tables: {', '.join(TABLES)}; "
                f"views: {', '.join(DATASETS)}"
            )
        for pattern in _MISSING_COLUMN:
            column = pattern.search(message)
            if isinstance(error, duckdb.BinderException) and column:
                named = referenced_tables(query)
                listing = "; ".join(f"{t} has {', '.join(self.columns(t))}" for t in named)
                where = f" in {', '.join(named)}" if named else ""
                return QueryError(
                    f"no column named {column.group(1)!r}{where}"
                    + (f"; {listing}" if listing else f" ({first_line(error)})")
                )
        if isinstance(error, duckdb.ParserException):
            return QueryError(f"the query does not parse: {compact(error)}")
        return QueryError(f"the query failed: {compact(error)}")


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """Ctrl-C during a query is the caller's KeyboardInterrupt, however DuckDB reports it (a
    RuntimeError 'Query interrupted' from a stream it was producing)."""
    try:
        yield
    except RuntimeError as error:
        if "interrupted" in str(error).lower():
            raise KeyboardInterrupt from None
        raise


def referenced_tables(query: str) -> list[str]:
    """The catalog's tables and views a query names (in catalog order)."""
    return [
        name
        for name in (*DATASETS, *TABLES)
        if re.search(rf'(?<![\w."]){name}(?![\w"])', query, flags=re.IGNORECASE)
    ]


def check_read_only(connection: Any, query: str) -> None:
    """Refuse anything but one read-only statement (the history is read, never changed)."""
    try:
        statements = connection.extract_statements(query)
    except duckdb.ParserException as error:
        raise QueryError(f"the query does not parse: {compact(error)}") from None
    if len(statements) != 1:
        raise QueryError(
            f"give exactly one statement, not {len(statements)}; e.g. SELECT count(*) FROM greeks"
        )
    kind = statements[0].type.name
    if kind not in READ_STATEMENTS:
        raise QueryError(
            f"a {kind} statement changes things; the history is read-only here: give one "
            f"SELECT (or WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN), and --output FILE to save it"
        )


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def compact(error: BaseException) -> str:
    """DuckDB's message on one line (its LINE/caret excerpt dropped)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith("LINE ") and set(line.strip()) != {"^"}]
    return " ".join(kept) or type(error).__name__


def _stream_error(error: Exception) -> BaseException:
    """DuckDB's error as it comes through the Arrow stream, as what the reader raises."""
    if str(error).startswith("INTERRUPT"):
        return KeyboardInterrupt()
    if str(error).startswith("IO Error") or replaced_while_read(error):
        return FilesChanged(
            f"a committed file changed while the result was being written (a session "
            f"is being re-published or removed): {first_line(error)}; run it again"
        )
    return QueryError(f"the query failed: {compact(error)}")


class FileReplaced(Exception):
    """A listed file was replaced (a re-publish renamed the new one over it) between DuckDB
    reading its footer and its pages: retried on a fresh snapshot like a vanished file."""


# What DuckDB says when a parquet file changed under a query (its footer read at bind time, its
# pages later): a re-publish renames the new file over the old one under the same name. The
# page headers it then decodes at the old footer's offsets are Thrift, whose errors DuckDB passes
# on untyped (plain ``duckdb.Error``, where its own errors are Binder/Catalog/... exceptions) and
# in a dozen wordings (measured: 20,000 failed reads of a file renamed over in a loop); the Arrow
# stream carries only the text, hence the signs.
_REPLACED_SIGNS = (
    "Prefetch registered for bytes outside file",
    "TProtocolException",
    "don't know what type",
    "invalid TType",
    "Could not read enough bytes",  # an IO error: the new file is shorter than the old
)


def replaced_while_read(error: Exception) -> bool:
    """Whether ``error`` is DuckDB failing on a parquet file renamed over while it read it."""
    if type(error) is duckdb.Error:
        return True
    return any(sign in str(error) for sign in _REPLACED_SIGNS)
