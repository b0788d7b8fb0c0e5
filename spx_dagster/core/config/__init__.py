"""Persisted, validated configuration (see DESIGN.md "Home, configuration, environment").

- ``settings``: the pydantic model, the one place that knows keys, types, defaults and docs.
- ``store``: the SQLite store with versioned change history and schema migrations.
- ``load``: effective values, defaults ← stored ← ``SPX_DATA_<SECTION>__<KEY>``, with sources.
- ``validate``: checks with guidance (calendar, filesystem, cross-field rules).
- ``changes``: set and reset, validated before anything is written.
- ``home``: ``SPX_DATA_HOME`` and the paths under it.
"""

from spx_dagster.core.config.changes import (
    ConfigRejected,
    ResetResult,
    SetResult,
    reset_values,
    set_value,
    set_values,
)
from spx_dagster.core.config.home import (
    catalog_path,
    dagster_home,
    logs_dir,
    spx_home,
    store_path,
)
from spx_dagster.core.config.load import (
    Resolution,
    ResolvedValue,
    Source,
    load_settings,
    resolve,
)
from spx_dagster.core.config.problems import Problem, Severity
from spx_dagster.core.config.settings import (
    KEYS,
    ConfigError,
    KeySpec,
    Settings,
    UnknownKeyError,
    describe_keys,
    env_var_name,
    format_value,
    json_value,
    key_spec,
    parse_value,
)
from spx_dagster.core.config.store import Change, ConfigStore, StoredValue, StoreError
from spx_dagster.core.config.validate import check_configuration, validate_settings

__all__ = [
    "KEYS",
    "Change",
    "ConfigError",
    "ConfigRejected",
    "ConfigStore",
    "KeySpec",
    "Problem",
    "ResetResult",
    "Resolution",
    "ResolvedValue",
    "SetResult",
    "Settings",
    "Severity",
    "Source",
    "StoreError",
    "StoredValue",
    "UnknownKeyError",
    "catalog_path",
    "check_configuration",
    "dagster_home",
    "describe_keys",
    "env_var_name",
    "format_value",
    "json_value",
    "key_spec",
    "load_settings",
    "logs_dir",
    "parse_value",
    "reset_values",
    "resolve",
    "set_value",
    "set_values",
    "spx_home",
    "store_path",
    "validate_settings",
]
