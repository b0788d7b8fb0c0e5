"""The Dagster instance the CLI works on: ``DAGSTER_HOME`` (default ``$SPX_DATA_HOME/dagster``).

Commands that run or read Dagster call ``open_instance``: it creates the home with spx-data's
``dagster.yaml`` when missing (an existing one is never overwritten: it may hold Postgres
settings), exports ``DAGSTER_HOME`` so that subprocesses (``dagster dev``, run workers) use the
same instance, and sets the pool limits from the settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from spx_dagster.core.config.home import dagster_home
from spx_dagster.defs.instance_config import apply_pool_limits, render_instance_yaml

INSTANCE_YAML_NAME = "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Create ``DAGSTER_HOME`` with spx-data's ``dagster.yaml`` if needed; export it."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / INSTANCE_YAML_NAME
    if not config.exists():
        temp = config.with_name(f".{INSTANCE_YAML_NAME}.tmp")
        temp.write_text(render_instance_yaml())
        os.replace(temp, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_instance(settings: Any | None = None) -> dg.DagsterInstance:
    """The persistent instance at ``DAGSTER_HOME``, with pool limits applied from ``settings``."""
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    if settings is not None:
        apply_pool_limits(instance, settings)
    return instance
