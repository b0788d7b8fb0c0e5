"""Every reading example of the README runs against sessions published for real: each
``spx-data sql`` and ``spx-data chain`` line of its code blocks, and its Python reader example."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from spx_dagster_tests.cli.reading_history import (
    history,  # noqa: F401  (fixture)
    invoke,
)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
COMMANDS = [
    line.strip()
    for _, body in BLOCKS
    for line in body.splitlines()
    if re.match(r"\s*spx-data (sql|chain) ", line)
]
PYTHON = [body for kind, body in BLOCKS if kind == "python" and "open_history" in body]


def test_the_readme_has_reading_examples() -> None:
    assert len([c for c in COMMANDS if c.startswith("spx-data sql")]) >= 5
    assert len([c for c in COMMANDS if c.startswith("spx-data chain")]) >= 3
    assert len(PYTHON) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_runs(command, history, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.chdir(tmp_path)  # where --output files land
    args = shlex.split(command)[1:]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    if "--output" in args:
        written = tmp_path / args[args.index("--output") + 1]
        assert written.stat().st_size > 0
    else:
        assert result.stdout.count("\n") > 4  # a table with rows, not an empty one


def test_the_python_example_runs(history) -> None:  # noqa: F811
    scope: dict = {}
    exec(compile(PYTHON[0], "README.md (Python reader example)", "exec"), scope)
    assert len(scope["chain"]) > 0 and 0 < scope["atm"]["delta"] < 1
    assert len(scope["greeks"]) > 0 and scope["greeks"].column_names[-1] == "implied_vol"
    assert len(scope["daily"]) == 3
