"""Output helpers shared by every ``spx-data`` command.

The contract: ``--json`` prints exactly one JSON document on stdout and nothing else there;
tables and a command's own result go to stdout; warnings, notes, progress and errors go to stderr;
an error exits with a contract code from ``exit_codes`` after saying what to do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spx_dagster.cli import exit_codes

# Width of tables when stdout is not a terminal (pipes, CI logs): wide enough for paths.
PIPE_WIDTH = 160

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """The ``--json`` flag of every read command (passed as ``as_json``)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout and nothing else there.",
    )(func)


def stdout_console() -> Console:
    """A console on the current stdout (created per call so test runners' streams are used)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def stderr_console() -> Console:
    """A console on the current stderr for messages, warnings and progress."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(obj: Any) -> str:
    """``obj`` as indented JSON (dates ISO, paths and enums as text, dataclasses as objects)."""
    return json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as the one JSON document of this command on stdout."""
    click.echo(to_json(obj))


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    no_wrap: Sequence[str] = (),
) -> None:
    """A rich table on stdout; cells are plain text (never interpreted as markup)."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column in no_wrap, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    stdout_console().print(table)


def say(message: str) -> None:
    """A command's own result line on stdout (plain text, no markup)."""
    stdout_console().print(Text(message))


def _tagged(tag: str, style: str, message: str) -> None:
    line = Text(f"{tag}: ", style=style)
    line.append(message)
    stderr_console().print(line)


def warn(message: str) -> None:
    """A warning on stderr; it does not change the exit code."""
    _tagged("warning", "yellow", message)


def note(message: str) -> None:
    """An informational line on stderr."""
    _tagged("note", "cyan", message)


def fail(message: str, code: int = exit_codes.USAGE) -> NoReturn:
    """Print an actionable error on stderr and exit with ``code`` (default 2: usage/config)."""
    _tagged("error", "bold red", message)
    sys.exit(code)
