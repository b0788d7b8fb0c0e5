"""Where spx-data keeps its state: ``SPX_DATA_HOME`` and the paths derived from it.

``SPX_DATA_HOME`` (default ``~/.spx-data``) holds the config store, the Dagster instance, the
catalog, the logs and, unless configured elsewhere, the data and temp directories. Every function
takes an optional environment mapping so that tests and callers can resolve paths for another
environment than the current process's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HOME_ENV = "SPX_DATA_HOME"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
DEFAULT_HOME = "~/.spx-data"
STORE_FILENAME = "config.sqlite3"
CATALOG_FILENAME = "catalog.duckdb"
DAGSTER_DIRNAME = "dagster"
LOGS_DIRNAME = "logs"
DATA_DIRNAME = "data"
TEMP_DIRNAME = "tmp"
CACHE_DIRNAME = "cache"


def expand_path(text: str | os.PathLike[str]) -> Path:
    """``~`` and ``$VARS`` expanded, made absolute against the current directory."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(text)))).absolute()


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def spx_home(env: Mapping[str, str] | None = None) -> Path:
    """``$SPX_DATA_HOME`` expanded, or ``~/.spx-data`` when unset or empty."""
    return expand_path(_env(env).get(HOME_ENV) or DEFAULT_HOME)


def dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """``$DAGSTER_HOME`` when set, else ``$SPX_DATA_HOME/dagster``."""
    value = _env(env).get(DAGSTER_HOME_ENV)
    return expand_path(value) if value else spx_home(env) / DAGSTER_DIRNAME


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Derived facts that are costly to build and safe to delete: ``$SPX_DATA_HOME/cache``."""
    return spx_home(env) / CACHE_DIRNAME


def store_path(env: Mapping[str, str] | None = None) -> Path:
    """The SQLite config store: ``$SPX_DATA_HOME/config.sqlite3``."""
    return spx_home(env) / STORE_FILENAME


def logs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Log files: ``$SPX_DATA_HOME/logs``."""
    return spx_home(env) / LOGS_DIRNAME


def catalog_path(settings: Any) -> Path:
    """The DuckDB catalog of ``settings``' home: ``$SPX_DATA_HOME/catalog.duckdb``."""
    return Path(settings.home) / CATALOG_FILENAME


def default_output_dir(home: Path) -> Path:
    """Published data when ``storage.output_dir`` is not configured."""
    return Path(home) / DATA_DIRNAME


def default_temp_dir(home: Path) -> Path:
    """Temp stages when ``storage.temp_dir`` is not configured (same filesystem as the data)."""
    return Path(home) / TEMP_DIRNAME
