"""Every command that reads storage validates it the same way (issue 11: on 43668ef, with
storage.output_dir naming a regular file, `list` and `gaps` exited 0 reporting every session
missing while `process` and `verify` exited 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from spx_dagster.cli.main import cli

SESSION = "2024-11-08"
COMMANDS = {
    "list": ["list", "--from", "2024-11-04", "--to", SESSION],
    "gaps": ["gaps", "--from", "2024-11-04", "--to", SESSION],
    "verify": ["verify", "--all"],
    "process": ["process", SESSION],
    "perf": ["perf"],
    "fill-gaps": ["fill-gaps", "--from", "2024-11-04", "--to", SESSION, "--dry-run"],
    "backfill": ["backfill", "2024-11-04", SESSION, "--dry-run"],
    "retry": ["retry", "--all-failed", "--dry-run"],
}


def _error(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stderr


@pytest.mark.parametrize("where", ["is-a-file", "under-a-file"])
def test_an_output_dir_that_is_a_file_is_the_same_error_for_every_command(
    pipeline_home, monkeypatch, tmp_path, where
):
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("a regular file\n")
    output_dir = a_file if where == "is-a-file" else a_file / "data"
    monkeypatch.setenv("SPX_DATA_STORAGE__OUTPUT_DIR", str(output_dir))
    answers = {name: _error(args) for name, args in COMMANDS.items()}
    for name, (code, stderr) in answers.items():
        assert code == 2, (name, stderr)
        assert "storage.output_dir" in stderr and str(output_dir) in stderr, (name, stderr)
        assert "SPX_DATA_STORAGE__OUTPUT_DIR" in stderr, (name, stderr)  # where it came from
    assert len({stderr for _, stderr in answers.values()}) == 1, answers
    # `status` diagnoses rather than refuses: its storage check says the same sentence.
    (stderr,) = {stderr for _, stderr in answers.values()}
    status = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    disk = json.loads(status.stdout)["checks"]["disk"]
    assert disk["level"] == "error" and disk["summary"] in stderr, (disk, stderr)


def test_an_output_dir_not_created_yet_is_a_fresh_install_not_an_error(pipeline_home):
    assert not pipeline_home.output_dir.exists()
    for name in ("list", "gaps", "verify"):
        code, stderr = _error(COMMANDS[name])
        assert code == 0, (name, stderr)
    assert not pipeline_home.output_dir.exists()  # reading creates nothing
