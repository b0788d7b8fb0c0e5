"""The package's layers, held to their rules (issue 11, "Shape"): core/ never imports Dagster,
every private `dagster._*` import sits in defs/dagster_internals.py, CLI commands never import
each other (what two share lives in a module that is not a command, or below the CLI), the
Dagster-instance services live in ops/, and the simulator does not reach into the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spx_dagster"


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (deferred imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_core_never_imports_dagster():
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            m for m in imports_of(p) if m.split(".")[0] == "dagster"
        )
        for p in modules("core")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_private_dagster_imports_sit_in_one_module():
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in imports_of(p) if m.startswith("dagster._"))
        for p in PACKAGE.rglob("*.py")
        if p.name != "dagster_internals.py"
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_cli_commands_do_not_import_each_other():
    offenders = {}
    for path in modules("cli"):
        if not path.name.endswith("_cmd.py"):
            continue
        others = {m for m in imports_of(path) if m.startswith("spx_dagster.cli.") and "_cmd" in m}
        if others:
            offenders[path.name] = sorted(others)
    assert offenders == {}


def test_the_instance_services_live_in_ops_and_the_simulator_not_in_the_cli():
    assert not (PACKAGE / "cli" / "runner.py").exists()
    assert not (PACKAGE / "cli" / "instance.py").exists()
    for name in ("runs.py", "backfills.py", "instance.py", "status.py"):
        assert (PACKAGE / "ops" / name).exists()
    for path in modules("ops"):
        assert not {m for m in imports_of(path) if m.startswith("spx_dagster.cli")}, path
    for path in modules("simulator"):
        assert not {m for m in imports_of(path) if m.startswith("spx_dagster.cli")}, path


def test_the_reader_never_imports_dagster_defs_ops_or_the_cli():
    forbidden = ("dagster", "spx_dagster.defs", "spx_dagster.ops", "spx_dagster.cli")
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            m for m in imports_of(p) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        for p in modules("read")
    }
    assert modules("read"), "spx_dagster/read/ is the reader package"
    assert {p: m for p, m in offenders.items() if m} == {}
