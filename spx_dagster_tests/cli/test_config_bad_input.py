"""Bad configuration input gets a clear refusal at `config set`, never a crash later (issue 11:
each case was accepted on 43668ef, or reached click's option parser)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from spx_dagster.cli.main import cli
from spx_dagster.core.config import load_settings

FLOAT_KEYS = [
    "thetadata.timeout_s",
    "thetadata.connect_timeout_s",
    "thetadata.backoff_max_s",
    "storage.min_free_gb",
    "quality.min_score",
]


def config_set(*words: str):
    return CliRunner().invoke(cli, ["config", "set", *words], catch_exceptions=False)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_infinite_and_nan_numbers_are_refused_naming_the_range(pipeline_home, key, value):
    result = config_set(key, value)
    assert result.exit_code == 2
    assert key in result.stderr and "allowed: " in result.stderr and "at most" in result.stderr
    assert f"spx-data config set {key} " in result.stderr  # an example
    assert "Traceback" not in result.output


def test_an_infinite_timeout_from_the_environment_is_a_config_error_not_a_traceback(
    pipeline_home,
):
    env = dict(os.environ, SPX_DATA_THETADATA__CONNECT_TIMEOUT_S="inf")
    spx = Path(sys.executable).with_name("spx-data")
    result = subprocess.run(
        [str(spx), "process", "2024-03-15"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "thetadata.connect_timeout_s" in result.stderr and "finite" in result.stderr
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr


@pytest.mark.parametrize(
    ("key", "value"), [("quality.min_score", "-0.1"), ("processing.max_dte", "-1")]
)
def test_negative_values_reach_the_keys_own_validation(pipeline_home, key, value):
    result = config_set(key, value)
    assert result.exit_code == 2
    assert "No such option" not in result.stderr
    assert f"{key} = '{value}'" in result.stderr and "at least 0" in result.stderr


def test_directories_empty_relative_and_system_paths(pipeline_home, tmp_path, monkeypatch):
    before = load_settings().storage.output_dir
    empty = config_set("storage.output_dir", "")
    assert empty.exit_code == 2 and "empty" in empty.stderr
    assert load_settings().storage.output_dir == before  # nothing changed
    monkeypatch.chdir(tmp_path)
    etc = config_set("storage.output_dir", "../" * len(tmp_path.parts) + "etc")
    assert etc.exit_code == 2 and "/etc is a system directory" in etc.stderr
    relative = config_set("storage.output_dir", "history/spx")
    assert relative.exit_code == 0
    assert f"stored as {tmp_path / 'history' / 'spx'}" in relative.stderr
    assert load_settings().storage.output_dir == tmp_path / "history" / "spx"


@pytest.mark.parametrize("mode", ["666", "777", "646"])
def test_world_writable_file_modes_are_refused(pipeline_home, mode):
    result = config_set("storage.file_mode", mode)
    assert result.exit_code == 2 and "every user" in result.stderr


def test_output_and_temp_dir_move_together_in_one_set(pipeline_home, tmp_path):
    shm = Path("/dev/shm")
    if shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev:
        # One at a time is refused in either order; the refusal gives the command for both.
        alone = config_set("storage.output_dir", str(shm / tmp_path.name / "data"))
        assert alone.exit_code == 2
        assert f"storage.output_dir {shm / tmp_path.name / 'data'} storage.temp_dir" in (
            alone.stderr
        )
    target = tmp_path / "elsewhere"
    result = config_set(
        "storage.output_dir", str(target / "data"), "storage.temp_dir", str(target / "tmp")
    )
    assert result.exit_code == 0, result.output
    storage = load_settings().storage
    assert (storage.output_dir, storage.temp_dir) == (target / "data", target / "tmp")
    refused = config_set("quality.min_score", "0.9", "processing.max_dte", "-3")
    assert refused.exit_code == 2
    assert load_settings().quality.min_score == 0.95  # all or nothing
    assert config_set("quality.min_score").exit_code == 2


def test_moving_output_dir_away_from_published_sessions_warns_with_the_move(
    pipeline_home, tmp_path
):
    old = load_settings().storage.output_dir
    (old / "_manifests").mkdir(parents=True)
    for day in ("2024-03-14", "2024-03-15"):
        (old / "_manifests" / f"date={day}.json").write_text("{}")
    result = config_set("storage.output_dir", str(tmp_path / "new"))
    assert result.exit_code == 0
    assert "2 published session(s) stay in" in result.stderr
    assert f"mv {old}/* {tmp_path / 'new'}/" in result.stderr
