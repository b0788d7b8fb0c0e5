"""The settings model, the home paths and the layering defaults ← stored ← environment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from spx_dagster.core import datasets
from spx_dagster.core.config import (
    KEYS,
    ConfigError,
    ConfigStore,
    Settings,
    Source,
    UnknownKeyError,
    catalog_path,
    dagster_home,
    describe_keys,
    env_var_name,
    format_value,
    load_settings,
    logs_dir,
    parse_value,
    resolve,
    spx_home,
    store_path,
)
from spx_dagster.core.thetadata import vendor
from spx_dagster.core.thetadata.client import ThetaClient

REQUIRED_KEYS = {
    "thetadata.base_url",
    "thetadata.api_version",
    "thetadata.subscription_tier",
    "thetadata.concurrency",
    "thetadata.timeout_s",
    "thetadata.connect_timeout_s",
    "thetadata.request_max_attempts",
    "thetadata.backoff_max_s",
    "processing.start_date",
    "processing.datasets",
    "processing.interval",
    "processing.max_dte",
    "processing.roots",
    "storage.output_dir",
    "storage.temp_dir",
    "storage.min_free_gb",
    "storage.file_mode",
    "quality.min_score",
    "retry.max_attempts",
}


def test_home_paths_follow_spx_data_home(tmp_path: Path):
    env = {"SPX_DATA_HOME": str(tmp_path / "h"), "HOME": "/nowhere"}
    assert spx_home(env) == tmp_path / "h"
    assert dagster_home(env) == tmp_path / "h" / "dagster"
    assert dagster_home({**env, "DAGSTER_HOME": str(tmp_path / "d")}) == tmp_path / "d"
    assert store_path(env) == tmp_path / "h" / "config.sqlite3"
    assert logs_dir(env) == tmp_path / "h" / "logs"
    assert spx_home({}) == Path("~/.spx-data").expanduser()
    settings = load_settings(env=env)
    assert catalog_path(settings) == tmp_path / "h" / "catalog.duckdb"
    assert settings.storage.output_dir == tmp_path / "h" / "data"
    assert settings.storage.temp_dir == tmp_path / "h" / "tmp"


def test_defaults_match_the_contract(tmp_path: Path):
    settings = load_settings(home=tmp_path, env={})
    assert settings.thetadata.base_url == vendor.DEFAULT_V3_BASE_URL
    assert settings.thetadata.api_version == "v3"
    assert settings.thetadata.subscription_tier is vendor.Tier.STANDARD
    assert settings.effective_concurrency == vendor.TIER_CONCURRENCY[vendor.Tier.STANDARD]
    assert settings.processing.start_date == dt.date(2016, 1, 4)
    assert settings.processing.datasets == datasets.DEFAULT_DATASETS
    assert settings.processing.roots == vendor.ROOTS
    assert settings.processing.max_dte is None
    assert settings.storage.file_mode == 0o640
    assert set(KEYS) >= REQUIRED_KEYS


def test_every_key_is_documented_with_a_valid_example():
    for spec in describe_keys():
        assert spec.description and spec.kind and spec.default, spec.key
        assert spec.env_var == env_var_name(spec.key)
        parse_value(spec.key, spec.example)  # the example the errors show is itself valid


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("thetadata.base_url", "http://127.0.0.1:25510/", "http://127.0.0.1:25510"),
        ("thetadata.api_version", " V2 ", "v2"),
        ("thetadata.subscription_tier", "Pro", vendor.Tier.PRO),
        ("thetadata.concurrency", "auto", None),
        ("thetadata.concurrency", "3", 3),
        ("processing.start_date", "20180102", dt.date(2018, 1, 2)),
        ("processing.datasets", "Greeks, eod,greeks", ("greeks", "eod")),
        ("processing.roots", "spxw", ("SPXW",)),
        ("processing.end_time", "16:15", dt.time(16, 15)),
        ("processing.max_dte", "none", None),
        ("storage.file_mode", "0o600", 0o600),
        ("storage.output_dir", "/data/../data/spx", Path("/data/spx")),  # `..` folded
        ("storage.output_dir", "none", None),  # back to $SPX_DATA_HOME/data, not ./none
    ],
)
def test_values_are_parsed_from_text(key, text, expected):
    assert parse_value(key, text) == expected


@pytest.mark.parametrize(
    ("key", "text", "why"),
    [
        ("thetadata.base_url", "ftp://x", "scheme 'ftp'"),
        ("thetadata.base_url", "http://127.0.0.1", "no port"),
        ("thetadata.base_url", "http://127.0.0.1:70000", "port"),
        ("thetadata.base_url", "http://127.0.0.1:25503/v3", "path"),
        ("thetadata.api_version", "v4", "'v3' or 'v2'"),
        ("thetadata.subscription_tier", "gold", "'standard'"),
        ("thetadata.concurrency", "0", "greater than or equal to 1"),
        ("thetadata.timeout_s", "soon", "valid number"),
        ("processing.start_date", "2016-02-30", "not a real calendar date"),
        ("processing.datasets", "greeks,eodd", "did you mean eod"),
        ("processing.datasets", ",", "empty"),
        ("processing.interval", "2m", "1m"),
        ("processing.roots", "SPY", "not a root"),
        ("processing.end_time", "17:00", "16:15:00"),
        ("storage.file_mode", "0400", "read and write"),
        ("quality.min_score", "1.5", "less than or equal to 1"),
    ],
)
def test_invalid_values_name_key_value_why_and_an_example(key, text, why):
    with pytest.raises(ConfigError) as caught:
        parse_value(key, text)
    message = str(caught.value)
    assert key in message and repr(text) in message and why in message
    assert f"spx-data config set {key} {KEYS[key].example}" in message


def test_unknown_keys_name_close_matches():
    with pytest.raises(UnknownKeyError) as caught:
        parse_value("thetadata.concurency", "2")
    assert caught.value.suggestions == ["thetadata.concurrency"]
    with pytest.raises(UnknownKeyError) as caught:
        parse_value("output_dir", "/x")
    assert "storage.output_dir" in caught.value.suggestions


def test_text_forms_round_trip():
    settings = Settings(home=Path("/h"))
    for key, text in settings.as_text().items():
        assert format_value(key, parse_value(key, text)) == text, key
    assert settings.as_text()["storage.file_mode"] == "640"


@pytest.mark.parametrize(
    ("tier", "configured", "effective"),
    [("standard", None, 4), ("pro", None, 8), ("free", None, 1), ("pro", 2, 2), ("value", 6, 2)],
)
def test_effective_concurrency_is_the_tier_limit_or_a_lower_value(tier, configured, effective):
    settings = Settings(
        home=Path("/h"), thetadata={"subscription_tier": tier, "concurrency": configured}
    )
    assert settings.effective_concurrency == effective


def test_stored_values_override_defaults_and_the_environment_overrides_both(tmp_path: Path):
    store = ConfigStore(tmp_path / "config.sqlite3")
    store.set("thetadata.timeout_s", "30")
    store.set("processing.datasets", "eod")
    env = {"SPX_DATA_THETADATA__TIMEOUT_S": "12.5", "SPX_DATA_STORAGE__OUTPUT_DIR": "/srv/spx"}

    resolution = resolve(tmp_path, env)

    values = resolution.values
    assert (values["thetadata.timeout_s"].value, values["thetadata.timeout_s"].source) == (
        12.5,
        Source.ENVIRONMENT,
    )
    assert values["thetadata.timeout_s"].source_label == (
        "environment (SPX_DATA_THETADATA__TIMEOUT_S)"
    )
    assert values["processing.datasets"].source is Source.STORED
    assert values["processing.datasets"].source_label == "stored (version 1)"
    assert values["retry.max_attempts"].source is Source.DEFAULT
    settings = load_settings(tmp_path, env)
    assert settings.thetadata.timeout_s == 12.5
    assert settings.processing.datasets == ("eod",)
    assert settings.storage.output_dir == Path("/srv/spx")
    assert load_settings(tmp_path, {}).thetadata.timeout_s == 30


def test_an_unusable_environment_value_fails_loading_with_guidance(tmp_path: Path):
    ConfigStore(tmp_path / "config.sqlite3").set("thetadata.concurrency", "2")
    env = {"SPX_DATA_THETADATA__CONCURRENCY": "lots"}
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, env)
    message = str(caught.value)
    assert "thetadata.concurrency" in message and "'lots'" in message
    assert "SPX_DATA_THETADATA__CONCURRENCY" in message
    # resolve() reports it and falls back to the stored value, so other commands still work.
    resolution = resolve(tmp_path, env)
    assert resolution.values["thetadata.concurrency"].value == 2
    assert [p.key for p in resolution.problems if p.is_error] == ["thetadata.concurrency"]


def test_the_thetadata_client_is_built_from_settings(tmp_path: Path):
    settings = load_settings(
        tmp_path,
        {
            "SPX_DATA_THETADATA__BASE_URL": "http://127.0.0.1:25999",
            "SPX_DATA_THETADATA__SUBSCRIPTION_TIER": "value",
            "SPX_DATA_PROCESSING__END_TIME": "16:15:00",
        },
    )
    with ThetaClient.from_settings(settings) as client:
        assert client.base_url == "http://127.0.0.1:25999"
        assert client.concurrency == 2
        assert client.end_time == dt.time(16, 15)
        assert client.policy.max_attempts == settings.thetadata.request_max_attempts
