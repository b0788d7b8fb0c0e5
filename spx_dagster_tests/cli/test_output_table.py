"""``cli.output.print_table`` draws long tables line by line (a 3,000-session ``list`` in
milliseconds) exactly as rich's ``Table`` draws them, and leaves to rich what needs wrapping."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from spx_dagster.cli import output

ROWS = [["2024-01-02", "complete", "1,234", None], ["2024-01-03", "failed", "-", "network"]]
COLUMNS = ["session", "status", "rows", "last error"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _printed(monkeypatch, *, fast: bool, width: int, color: bool, title: str | None) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        color_system="truecolor" if color else None,
        highlight=False,
    )
    monkeypatch.setattr(output, "stdout_console", lambda: console)
    if not fast:
        monkeypatch.setattr(output, "_table_text", lambda *args: None)
    output.print_table(COLUMNS, ROWS, title=title, no_wrap=["session"])
    monkeypatch.undo()
    return buffer.getvalue()


@pytest.mark.parametrize("title", [None, "Gaps in 2024-01-02..2024-01-03 (highest priority first)"])
@pytest.mark.parametrize("color", [False, True])
def test_the_fast_table_is_rich_s_table(monkeypatch, title, color) -> None:
    fast = _printed(monkeypatch, fast=True, width=120, color=color, title=title)
    rich = _printed(monkeypatch, fast=False, width=120, color=color, title=title)
    # With colours the same characters carry the same styles; rich splits its escape codes
    # differently around the padding.
    assert ANSI.sub("", fast) == ANSI.sub("", rich)
    if color:
        assert "\x1b[1m" in fast and (title is None or "\x1b[3m" in fast)
    else:
        assert fast == rich


def test_a_table_wider_than_the_console_is_left_to_rich(monkeypatch) -> None:
    narrow = _printed(monkeypatch, fast=True, width=30, color=False, title=None)
    assert narrow == _printed(monkeypatch, fast=False, width=30, color=False, title=None)
    assert max(len(line) for line in narrow.splitlines()) <= 30
    assert (
        output._table_text(Console(width=30), COLUMNS, [[c or "" for c in r] for r in ROWS], None)
        is None
    )
