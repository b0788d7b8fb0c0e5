"""The README stays true: every command, every configuration key and the two quick-start
commands it names exist, and the Makefile targets it names are real."""

from __future__ import annotations

import re
from pathlib import Path

from spx_dagster.cli.main import COMMANDS
from spx_dagster.core.config import describe_keys

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_command_is_documented_with_an_example():
    for name in COMMANDS:
        assert re.search(rf"spx-data {name}\b", README), f"README has no example of `{name}`"


def test_every_configuration_key_is_documented():
    for spec in describe_keys():
        assert f"`{spec.key}`" in README, f"README does not document {spec.key}"


def test_quick_start_names_two_make_targets_that_exist():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make ([\w-]+)\b", quick_start, flags=re.MULTILINE)
    assert commands == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in commands:
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
