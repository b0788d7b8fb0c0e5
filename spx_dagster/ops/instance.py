"""The Dagster instance the CLI works on: ``DAGSTER_HOME`` (default ``$SPX_DATA_HOME/dagster``).

Commands that run or read Dagster call ``open_instance``: it creates the home with spx-data's
``dagster.yaml`` when missing (an existing one is never overwritten: it may hold Postgres
settings), exports ``DAGSTER_HOME`` so that subprocesses (``dagster dev``, run workers) use the
same instance, and sets the pool limits from the settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from spx_dagster.core.config.home import dagster_home
from spx_dagster.core.storage.atomic import atomic_write_bytes
from spx_dagster.defs.dead_runs import reap_dead_runs
from spx_dagster.defs.instance_config import apply_pool_limits, render_instance_yaml

INSTANCE_YAML_NAME = "dagster.yaml"
OPENING_LOCK_NAME = ".spx-data-open.lock"


def ensure_dagster_home() -> Path:
    """Create ``DAGSTER_HOME`` with spx-data's ``dagster.yaml`` if needed; export it."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / INSTANCE_YAML_NAME
    if not config.exists():
        atomic_write_bytes(config, render_instance_yaml().encode())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextlib.contextmanager
def _opening_lock(home: Path) -> Iterator[None]:
    """One process at a time opens the instance: Dagster's SQLite storage creates its databases
    on first open, and two processes doing it at once both stamp the schema version (alembic:
    "more than one head"), which breaks the instance for good."""
    with open(home / OPENING_LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_instance(settings: Any | None = None) -> dg.DagsterInstance:
    """The persistent instance at ``DAGSTER_HOME``, with pool limits applied from ``settings``
    and the runs of CLI processes that died ended (``defs.dead_runs``)."""
    home = ensure_dagster_home()
    with _opening_lock(home):
        instance = dg.DagsterInstance.get()
        if settings is not None:
            apply_pool_limits(instance, settings)
    reap_dead_runs(instance)
    return instance
