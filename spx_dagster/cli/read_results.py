"""What ``spx-data sql`` and ``spx-data chain`` share: opening the history, the output options,
writing a result, and the exit code of a reader's error.

``--format table|csv|json|parquet`` and ``--output FILE``: without ``--format`` the suffix of
``--output`` picks the format (``.csv``, ``.json``, ``.parquet``), else a table on the terminal.
Files are written to a temporary file and renamed, so a failure never leaves half of one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import fail, note
from spx_dagster.cli.read_options import load_settings_or_fail, storage_or_fail

F = TypeVar("F", bound=Callable[..., Any])
OUTPUT_FORMATS = ("table", "csv", "json", "parquet")


def output_options(func: F) -> F:
    """``--format`` and ``--output`` (passed as ``fmt`` and ``output``)."""
    func = click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the result to FILE (replaced only once the whole result is written).",
    )(func)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(OUTPUT_FORMATS),
        help="table (default on stdout), csv, json (one array of objects) or parquet "
        "(needs --output); default with --output: from its suffix.",
    )(func)


def resolve_format(fmt: str | None, output: Path | None, as_json: bool) -> str:
    """The output format from the options; a contradiction exits 2 naming it."""
    from spx_dagster.read.export import SUFFIXES, format_of

    if as_json:
        if fmt not in (None, "json"):
            fail(f"--json prints JSON; it cannot be combined with --format {fmt}")
        if output is not None:
            fail("--json prints the result on stdout; to write a file use --format json --output")
        return "json"
    if output is not None:
        if fmt is None:
            fmt = format_of(output)
            if fmt is None:
                fail(
                    f"--output {output} has no suffix that names a format "
                    f"({', '.join(SUFFIXES)}); add one or give --format csv|json|parquet"
                )
        if fmt == "table":
            fail("--format table is for the terminal; write a file with --format csv|json|parquet")
        if not output.parent.is_dir():
            fail(
                f"--output {output}: the directory {output.parent} does not exist; create it first"
            )
        return fmt
    if fmt == "parquet":
        fail("--format parquet writes binary data: give --output FILE.parquet")
    return fmt or "table"


def open_history_or_fail() -> Any:
    """The history at the configured ``storage.output_dir`` (the read commands' storage check)."""
    settings = load_settings_or_fail()
    storage_or_fail(settings)
    from spx_dagster.read import open_history

    return open_history(settings.storage.output_dir)


def fail_read(error: Exception) -> NoReturn:
    """Exit with the contract code of a reader's error: 2 for a bad request, 1 when the data
    to answer it is not there (not published, changed while read)."""
    from spx_dagster.read import ChainError, FilesChanged, NotPublished, QueryError

    if isinstance(error, QueryError | ChainError):
        fail(str(error), exit_codes.USAGE)
    if isinstance(error, NotPublished):
        fail(str(error), exit_codes.WORK_FAILED, category="not_published")
    if isinstance(error, FilesChanged):
        fail(str(error), exit_codes.WORK_FAILED, category="files_changed")
    raise error


def write_result(schema: Any, batches: Iterable[Any], fmt: str, output: Path | None) -> int:
    """Write a result in csv, json or parquet to ``output`` (atomically) or stdout."""
    from spx_dagster.read.export import write_batches, write_file

    if output is None:
        sys.stdout.flush()
        stream = sys.stdout.buffer
        rows = write_batches(schema, batches, fmt, stream)
        stream.flush()
        return rows
    rows = write_file(output, lambda out: write_batches(schema, batches, fmt, out))
    note(f"wrote {rows:,} rows to {output} ({fmt})")
    return rows


def cell(value: Any) -> str:
    """A value as a table cell (empty for null)."""
    return "" if value is None else str(value)
