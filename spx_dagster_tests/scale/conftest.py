"""Fixtures of the scale-out tests: real PostgreSQL and Redis servers on loopback."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from spx_dagster_tests.scale.services import postgres_bindir, postgres_server, redis_server


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server (Debian's postgresql package) on 127.0.0.1."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin/initdb); "
            "install them with `apt-get install postgresql` (.ci/run does)"
        )
    pytest.importorskip(
        "dagster_postgres", reason="install the scale extras: pip install -e '.[scale]'"
    )
    with postgres_server(bindir) as server:
        yield server


@pytest.fixture(scope="module")
def redis_url():
    """Debian's redis-server on 127.0.0.1 (the Celery broker and result backend)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is missing; install it with `apt-get install redis-server`")
    pytest.importorskip(
        "dagster_celery", reason="install the scale extras: pip install -e '.[scale]'"
    )
    directory = Path(tempfile.mkdtemp(prefix="spx-redis-"))
    try:
        with redis_server(directory) as url:
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)
