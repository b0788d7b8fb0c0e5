"""The shipped scale-out profiles agree with the code and with Dagster's config schemas."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config

from spx_dagster.defs.executors import (
    BACKEND_ENV,
    BROKER_ENV,
    DEFAULT_BACKEND,
    DEFAULT_BROKER,
    EXECUTOR_ENV,
    ExecutorChoiceError,
    celery_executor_config,
    executor_name,
    selected_executor,
)
from spx_dagster.defs.instance_config import (
    POSTGRES_ENV,
    POSTGRES_STORAGE,
    render_instance_yaml,
)
from spx_dagster_tests.scale.services import REPO

PG_VALUES = {
    "SPX_DATA_PG_USER": "spx",
    "SPX_DATA_PG_PASSWORD": "secret",
    "SPX_DATA_PG_HOST": "db.internal",
    "SPX_DATA_PG_DB": "spx_dagster",
    "SPX_DATA_PG_PORT": "5433",
}


def test_the_repository_ships_both_instance_profiles():
    assert (REPO / "dagster.yaml").read_text() == render_instance_yaml()
    shipped = (REPO / "deploy" / "postgres" / "dagster.yaml").read_text()
    assert shipped == render_instance_yaml(POSTGRES_STORAGE)


def test_the_postgres_profile_keeps_the_default_limits_and_adds_only_storage():
    postgres = render_instance_yaml(POSTGRES_STORAGE)
    assert "storage:\n  postgres:" in postgres
    assert "storage:" not in render_instance_yaml()
    shared = render_instance_yaml().split("concurrency:", 1)[1]
    assert postgres.endswith(shared)
    assert "secret" not in postgres and "password: " not in postgres


def test_the_postgres_profile_is_valid_instance_config_with_credentials_from_env(
    tmp_path, monkeypatch
):
    pytest.importorskip("dagster_postgres", reason="install the scale extras: .[scale]")
    for var, value in PG_VALUES.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "dagster.yaml").write_text(render_instance_yaml(POSTGRES_STORAGE))
    config, _ = dagster_instance_config(str(tmp_path))
    postgres_db = config["storage"]["postgres"]["postgres_db"]
    assert {field: postgres_db[field] for field in POSTGRES_ENV} == {
        field: {"env": var} for field, var in POSTGRES_ENV.items()
    }
    from dagster._config import process_config
    from dagster._core.storage.config import pg_config
    from dagster_postgres.utils import pg_url_from_config

    resolved = process_config(pg_config(), config["storage"]["postgres"])
    assert resolved.success, resolved.errors
    url = pg_url_from_config(resolved.value)
    assert url.startswith("postgresql+psycopg2://spx:secret@db.internal:5433/spx_dagster")


def test_an_unknown_storage_profile_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"'mysql'.*'sqlite'.*'postgres'"):
        render_instance_yaml("mysql")


def test_steps_run_in_their_run_worker_unless_a_profile_says_otherwise():
    assert executor_name({}) == "in_process"
    assert selected_executor({}) is dg.in_process_executor
    assert selected_executor({EXECUTOR_ENV: " Multiprocess "}) is dg.multiprocess_executor


def test_an_unknown_executor_names_the_value_and_the_choices():
    with pytest.raises(
        ExecutorChoiceError, match=r"'kubernetes'.*in_process, multiprocess, celery"
    ):
        executor_name({EXECUTOR_ENV: "kubernetes"})


def test_the_celery_executor_reads_the_broker_from_the_environment_when_set():
    pytest.importorskip("dagster_celery", reason="install the scale extras: .[scale]")
    assert celery_executor_config({}) == {"broker": DEFAULT_BROKER, "backend": DEFAULT_BACKEND}
    env = {EXECUTOR_ENV: "celery", BROKER_ENV: "redis://:pw@broker:6379/0"}
    assert celery_executor_config(env)["broker"] == {"env": BROKER_ENV}
    executor = selected_executor(env)
    assert executor is not None and executor.name == "spx_celery"


def test_the_worker_config_names_the_executors_variables(monkeypatch):
    pytest.importorskip("dagster_celery", reason="install the scale extras: .[scale]")
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv(BROKER_ENV, "redis://127.0.0.1:6390/0")
    monkeypatch.setenv(BACKEND_ENV, "redis://127.0.0.1:6390/1")
    config = get_validated_config(str(REPO / "deploy" / "celery" / "celery.yaml"))
    assert config["broker"] == "redis://127.0.0.1:6390/0"
    assert config["backend"] == "redis://127.0.0.1:6390/1"
    script = (REPO / "deploy" / "celery" / "start-worker.sh").read_text()
    assert DEFAULT_BROKER in script and DEFAULT_BACKEND in script
