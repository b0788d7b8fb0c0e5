"""Moving `storage.output_dir` away from published sessions says how to bring them along, with a
command that works when pasted (issue 11: on 43668ef they all silently became `missing`)."""

from __future__ import annotations

import re
import subprocess

from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.config import load_settings


def config_set(*words: str):
    return CliRunner().invoke(cli, ["config", "set", *words], catch_exceptions=False)


def test_the_printed_mv_command_moves_the_sessions_even_with_spaces_in_the_paths(
    tmp_path, monkeypatch
):
    home = tmp_path / "spx home"
    monkeypatch.setenv("SPX_DATA_HOME", str(home))
    monkeypatch.setenv("SPX_DATA_STORAGE__MIN_FREE_GB", "0")
    old = load_settings().storage.output_dir
    (old / "_manifests").mkdir(parents=True)
    for day in ("2024-03-14", "2024-03-15", "2024-03-18"):
        (old / "_manifests" / f"date={day}.json").write_text("{}")
    new = tmp_path / "big disk" / "spx"

    result = config_set("storage.output_dir", str(new))

    assert result.exit_code == 0, result.output
    assert "3 published session(s) stay in" in result.stderr
    (command,) = re.findall(r"Move them with `([^`]+)`", " ".join(result.stderr.split()))
    subprocess.run(["bash", "-c", command], check=True, timeout=30)
    assert sorted(p.name for p in (new / "_manifests").iterdir()) == [
        "date=2024-03-14.json",
        "date=2024-03-15.json",
        "date=2024-03-18.json",
    ]


def test_a_key_given_twice_in_one_set_is_refused_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path))
    result = config_set("quality.min_score", "0.9", "quality.min_score", "0.8")
    assert result.exit_code == 2
    assert "quality.min_score: it is given twice" in result.stderr
    assert load_settings().quality.min_score == 0.95


def test_only_a_relative_directory_is_said_to_be_relative(tmp_path, monkeypatch):
    monkeypatch.setenv("SPX_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPX_DATA_STORAGE__MIN_FREE_GB", "0")
    monkeypatch.setenv("BIG_DISK", str(tmp_path / "big"))
    monkeypatch.chdir(tmp_path)
    relative = config_set("storage.output_dir", "history")
    assert f"'history' is relative: stored as {tmp_path / 'history'}" in relative.stderr
    for word in ("auto", "none", "$BIG_DISK/spx", str(tmp_path / "abs")):
        result = config_set("storage.output_dir", word)
        assert result.exit_code == 0, result.output
        assert "is relative" not in result.stderr, word
    assert load_settings().storage.output_dir == tmp_path / "abs"


def test_a_relative_directory_from_the_environment_is_a_warning_naming_the_absolute_path(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    env = {"SPX_DATA_HOME": str(tmp_path / "home"), "SPX_DATA_STORAGE__TEMP_DIR": "scratch"}
    result = CliRunner().invoke(
        cli, ["config", "validate", "--offline"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "storage.temp_dir = scratch" in text and "it is relative" in text
    assert f"export SPX_DATA_STORAGE__TEMP_DIR={tmp_path / 'scratch'}" in text
