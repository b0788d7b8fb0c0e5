"""Output helpers shared by every ``spx-data`` command.

The contract: ``--json`` prints exactly one JSON document on stdout and nothing else there;
tables and a command's own result go to stdout; warnings, notes, progress and errors go to stderr;
an error exits with a contract code from ``exit_codes`` after saying what to do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
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


# What the running command promised on stdout: set by ``json_option`` for the command's call.
_json_state = {"json": False, "emitted": False}
# The category of an error printed as JSON, by exit code (``fail`` may name a finer one).
_CATEGORY_OF_CODE = {
    exit_codes.WORK_FAILED: "work_failed",
    exit_codes.USAGE: "usage",
    exit_codes.TERMINAL_UNREACHABLE: "terminal_unreachable",
    exit_codes.INTERRUPTED: "interrupted",
}


def json_option(func: F) -> F:
    """The ``--json`` flag of every read command (passed as ``as_json``).

    While the command runs with ``--json``, ``fail`` prints its error as the one JSON document
    (``{"error", "category", "hint", "exit_code"}``) unless the command already printed one, so a
    script reading stdout always gets a document.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _json_state.update(json=bool(kwargs.get("as_json")), emitted=False)
        try:
            return func(*args, **kwargs)
        finally:
            _json_state.update(json=False, emitted=False)

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout and nothing else there.",
    )(wrapper)


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
    _json_state["emitted"] = True


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    no_wrap: Sequence[str] = (),
) -> None:
    """A rich table on stdout; cells are plain text (never interpreted as markup)."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    console = stdout_console()
    text = _table_text(console, list(columns), cells, title)
    if text is not None:
        console.print(text, soft_wrap=True)
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column in no_wrap, overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _table_text(
    console: Console, columns: list[str], rows: list[list[str]], title: str | None
) -> Text | None:
    """The table exactly as rich draws it (heavy head box, one space of padding, bold header,
    italic centred title) when nothing needs wrapping, built line by line: rich measures and
    wraps every cell, seconds for a 3,000-session ``list``. None: let rich draw it."""
    from rich.cells import cell_len

    if not console.encoding.lower().startswith("utf") or console.legacy_windows:
        return None  # rich substitutes an ASCII box there
    if any("\n" in cell or "\r" in cell or "\t" in cell for row in rows for cell in row):
        return None
    widths = [cell_len(c) for c in columns]
    for row in rows:
        if len(row) != len(columns):
            return None
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    total = sum(widths) + 3 * len(widths) + 1
    if total > console.width or (title is not None and cell_len(title) > total):
        return None

    def line(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * (w + 2) for w in widths) + right + "\n"

    def cells(row: list[str]) -> list[str]:
        return [cell + " " * (w - cell_len(cell)) for cell, w in zip(row, widths, strict=True)]

    out = Text()
    if title is not None:
        pad = total - cell_len(title)
        out.append(" " * (pad // 2) + title + " " * (pad - pad // 2), style="italic")
        out.append("\n")
    out.append(line("┏", "━", "┳", "┓"))
    out.append("┃")
    for cell in cells(columns):
        out.append(f" {cell} ", style="bold")
        out.append("┃")
    out.append("\n")
    out.append(line("┡", "━", "╇", "┩"))
    out.append("".join("│ " + " │ ".join(cells(row)) + " │\n" for row in rows))
    out.append(line("└", "─", "┴", "┘").rstrip("\n"))
    return out


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


def fail(
    message: str,
    code: int = exit_codes.USAGE,
    *,
    category: str | None = None,
    hint: str | None = None,
) -> NoReturn:
    """Print an actionable error on stderr and exit with ``code`` (default 2: usage/config).

    Under ``--json`` the error is also the JSON document on stdout, with the same exit code.
    """
    _tagged("error", "bold red", message)
    if _json_state["json"] and not _json_state["emitted"]:
        context = click.get_current_context(silent=True)
        command = context.command_path if context is not None else "spx-data"
        emit_json(
            {
                "error": message,
                "category": category or _CATEGORY_OF_CODE.get(code, "error"),
                "hint": hint or f"see `{command} --help`",
                "exit_code": code,
            }
        )
    sys.exit(code)
