"""Execution profiles: which Dagster executor runs the steps of every job (README "Scaling out").

``SPX_DATA_EXECUTOR`` picks it when the code location loads (the daemon, the webserver and every
run worker load it, so set it the same way on each machine):

- unset or ``in_process``: the embedded default. The session job is a chain of three steps that
  hand over through files, so a subprocess per step buys no parallelism and costs a Python start
  and a code-location load per step; every step runs inside its run worker instead. Step retries,
  pools and run retries work the same.
- ``multiprocess``: Dagster's own default, each step a subprocess of its run worker (isolates a
  step that crashes its process, at the cost above).
- ``celery``: dagster-celery; each step is a Celery task that any worker listening to the broker
  may pick up (``dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml``).
  The broker and result backend are ``SPX_DATA_CELERY_BROKER`` and ``SPX_DATA_CELERY_BACKEND``
  (Redis on loopback when unset).

Whatever the executor, pool slots live in the instance's storage, so the ``thetadata`` pool
bounds fetch steps across all run and step workers together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

EXECUTOR_ENV = "SPX_DATA_EXECUTOR"
BROKER_ENV = "SPX_DATA_CELERY_BROKER"
BACKEND_ENV = "SPX_DATA_CELERY_BACKEND"
IN_PROCESS = "in_process"
MULTIPROCESS = "multiprocess"
CELERY = "celery"
EXECUTORS = (IN_PROCESS, MULTIPROCESS, CELERY)
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_BACKEND = "redis://127.0.0.1:6379/1"


class ExecutorChoiceError(ValueError):
    """``SPX_DATA_EXECUTOR`` names no profile, or the profile's package is not installed."""


def executor_name(env: Mapping[str, str] | None = None) -> str:
    """The profile ``SPX_DATA_EXECUTOR`` selects (``in_process`` when unset or empty)."""
    env = os.environ if env is None else env
    name = env.get(EXECUTOR_ENV, "").strip().lower() or IN_PROCESS
    if name not in EXECUTORS:
        raise ExecutorChoiceError(
            f"{EXECUTOR_ENV}={env.get(EXECUTOR_ENV)!r} is not an execution profile; use one of "
            f"{', '.join(EXECUTORS)} (or leave it unset for {IN_PROCESS})"
        )
    return name


def _env_or(var: str, default: str, env: Mapping[str, str]) -> Any:
    # An {"env": VAR} source is resolved when a run starts and keeps a broker password out of
    # the job snapshot stored in the instance.
    return {"env": var} if env.get(var) else default


def celery_executor_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The dagster-celery executor config of this profile (worker YAML must agree with it)."""
    env = os.environ if env is None else env
    return {
        "broker": _env_or(BROKER_ENV, DEFAULT_BROKER, env),
        "backend": _env_or(BACKEND_ENV, DEFAULT_BACKEND, env),
    }


def selected_executor(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor for ``dg.Definitions(executor=...)``."""
    env = os.environ if env is None else env
    name = executor_name(env)
    if name == IN_PROCESS:
        return dg.in_process_executor
    if name == MULTIPROCESS:
        return dg.multiprocess_executor
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ExecutorChoiceError(
            f"{EXECUTOR_ENV}=celery needs dagster-celery, which is not installed; install the "
            "scale extras with `pip install -e '.[scale]'` or unset "
            f"{EXECUTOR_ENV}"
        ) from None
    return celery_executor.configured(celery_executor_config(env), name="spx_celery")
