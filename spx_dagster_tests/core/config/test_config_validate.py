"""Validation with guidance: calendar, filesystem and cross-field rules, each naming a fix."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from spx_dagster.core.calendar import ET
from spx_dagster.core.config import (
    ConfigError,
    ConfigRejected,
    ConfigStore,
    Settings,
    Severity,
    check_configuration,
    set_value,
    validate_settings,
)

# A fixed clock: Monday 2024-06-03 18:00 ET, after that session's end-of-day report.
NOW = dt.datetime(2024, 6, 3, 18, 0, tzinfo=ET)


def settings_for(tmp_path: Path, **sections) -> Settings:
    storage = {"output_dir": tmp_path / "data", "temp_dir": tmp_path / "tmp"}
    storage.update(sections.pop("storage", {}))
    return Settings(home=tmp_path, storage=storage, **sections)


def problems_of(settings: Settings, key: str, **kwargs):
    return [p for p in validate_settings(settings, now=NOW, **kwargs) if p.key == key]


def test_defaults_are_valid_and_missing_directories_are_created(tmp_path: Path):
    settings = settings_for(tmp_path)
    found = validate_settings(settings, now=NOW, create_dirs=True)
    assert [p.severity for p in found] == [Severity.NOTE, Severity.NOTE]
    assert (tmp_path / "data").is_dir() and (tmp_path / "tmp").is_dir()
    assert validate_settings(settings, now=NOW) == []


def test_localhost_and_a_port_of_the_other_api_version_warn(tmp_path: Path):
    settings = settings_for(tmp_path, thetadata={"base_url": "http://localhost:25510"})
    found = problems_of(settings, "thetadata.base_url")
    assert [p.severity for p in found] == [Severity.WARNING, Severity.WARNING]
    assert "476" in found[0].why and "http://127.0.0.1:25510" in found[0].fix
    assert "api_version v2" in found[1].fix


@pytest.mark.parametrize(
    ("day", "why", "fix"),
    [
        ("2024-06-01", "is a Saturday", "2024-06-03"),
        ("2023-07-04", "holiday", "2023-07-05"),  # names the nearest sessions
        ("2024-06-04", "latest closed session is 2024-06-03", "2016-01-04"),
        ("2015-06-01", "history, which starts 2016-01-01", "2016-01-04"),
    ],
)
def test_start_date_must_be_a_closed_session_within_the_tiers_history(tmp_path, day, why, fix):
    settings = settings_for(tmp_path, processing={"start_date": day})
    (problem,) = problems_of(settings, "processing.start_date")
    assert problem.is_error
    assert why in problem.why
    assert f"spx-data config set processing.start_date {fix}" in problem.fix
    if day == "2023-07-04":
        assert "2023-07-03" in problem.why and "2023-07-05" in problem.why


def test_the_tier_bounds_concurrency_history_and_datasets(tmp_path: Path):
    settings = settings_for(
        tmp_path,
        thetadata={"subscription_tier": "value", "concurrency": 4},
        processing={"datasets": "greeks,eod,quote", "start_date": "2020-01-02"},
    )
    found = {p.key: p for p in validate_settings(settings, now=NOW)}
    concurrency = found["thetadata.concurrency"]
    assert "serves 2" in concurrency.why and concurrency.involves("thetadata.subscription_tier")
    datasets = found["processing.datasets"]
    assert "greeks" in datasets.why and "quote" not in datasets.why.split("(")[0]
    assert "processing.datasets eod,quote" in datasets.fix


def test_v2_terminals_cannot_serve_v3_only_datasets(tmp_path: Path):
    settings = settings_for(
        tmp_path,
        thetadata={"api_version": "v2", "base_url": "http://127.0.0.1:25510"},
        processing={"datasets": "eod,greeks_eod"},
    )
    (problem,) = problems_of(settings, "processing.datasets")
    assert "greeks_eod" in problem.why and "processing.datasets eod" in problem.fix


def test_a_directory_that_is_a_file_or_below_a_file_is_an_error(tmp_path: Path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    settings = settings_for(tmp_path, storage={"output_dir": blocker, "temp_dir": blocker / "tmp"})
    output = problems_of(settings, "storage.output_dir")
    assert [p.why for p in output if p.is_error] == ["it exists but is not a directory"]
    (temp,) = [p for p in problems_of(settings, "storage.temp_dir") if "created" in p.why]
    assert "cannot be created" in temp.why and str(blocker) in temp.why
    with_create = problems_of(settings, "storage.temp_dir", create_dirs=True)
    assert any("cannot be created" in p.why for p in with_create)


def test_too_little_free_space_is_an_error_naming_the_reserve(tmp_path: Path):
    settings = settings_for(tmp_path, storage={"min_free_gb": 1e9})
    (problem,) = problems_of(settings, "storage.output_dir")
    assert "less than storage.min_free_gb" in problem.why
    assert "spx-data config set storage.min_free_gb" in problem.fix


def test_temp_dir_must_differ_from_the_output_dir(tmp_path: Path):
    settings = settings_for(tmp_path, storage={"temp_dir": tmp_path / "data"})
    (problem,) = problems_of(settings, "storage.temp_dir")
    assert "same directory" in problem.why


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second filesystem (/dev/shm)")
def test_temp_dir_on_another_filesystem_is_an_error(tmp_path: Path):
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as tmp_path here")
    settings = settings_for(tmp_path, storage={"temp_dir": "/dev/shm/spx-tmp-never-created"})
    (problem,) = problems_of(settings, "storage.temp_dir")
    assert "another filesystem" in problem.why and "atomic rename" in problem.why
    assert str(tmp_path / "data-tmp") in problem.fix


def test_set_rejects_a_value_that_breaks_a_rule_and_leaves_the_store_unchanged(
    tmp_path: Path,
):
    env: dict[str, str] = {}
    set_value("processing.datasets", "eod", home=tmp_path, env=env, now=NOW)
    with pytest.raises(ConfigRejected) as caught:
        set_value("thetadata.subscription_tier", "free", home=tmp_path, env=env, now=NOW)
    message = str(caught.value)
    assert "thetadata.subscription_tier = 'free'" in message
    assert "conflicts with processing.start_date" in message
    assert "nothing was stored" in message
    store = ConfigStore(tmp_path / "config.sqlite3")
    assert store.get("thetadata.subscription_tier") is None
    assert [c.key for c in store.history()] == ["processing.datasets"]

    with pytest.raises(ConfigError, match="is a Saturday"):
        set_value("processing.start_date", "2024-06-01", home=tmp_path, env=env, now=NOW)
    set_value("processing.start_date", "2023-06-01", home=tmp_path, env=env, now=NOW)
    result = set_value("thetadata.subscription_tier", "free", home=tmp_path, env=env, now=NOW)
    assert result.change.version == 1 and result.previous.text == "standard"


def test_set_creates_a_directory_only_once_accepted(tmp_path: Path):
    target = tmp_path / "elsewhere" / "data"
    result = set_value("storage.output_dir", str(target), home=tmp_path, env={}, now=NOW)
    assert target.is_dir() and result.text == str(target)


def test_check_configuration_reports_every_problem_with_its_source(tmp_path: Path):
    env = {
        "SPX_DATA_THETADATA__TIMEOUT_S": "soon",
        "SPX_DATA_THETADATA__CONCURRENCY": "8",
        "SPX_DATA_PROCESSING__START_DATE": "2024-06-01",
        "SPX_DATA_PROCESSING__DATASET": "eod",
    }
    found = check_configuration(tmp_path, env, now=NOW)
    errors = {p.key: p for p in found if p.is_error}
    assert set(errors) == {
        "thetadata.timeout_s",
        "thetadata.concurrency",
        "processing.start_date",
    }
    assert errors["thetadata.timeout_s"].source == "SPX_DATA_THETADATA__TIMEOUT_S"
    assert errors["thetadata.concurrency"].source == (
        "environment (SPX_DATA_THETADATA__CONCURRENCY)"
    )
    (unknown,) = [p for p in found if p.key == "SPX_DATA_PROCESSING__DATASET"]
    assert unknown.severity is Severity.WARNING
    assert "SPX_DATA_PROCESSING__DATASETS" in unknown.fix
