"""Child side of ``graph_session``: ``spx-data process SESSION --json`` in this very process.

The session's three assets run through Dagster (``execute_in_process`` on the instance at
``DAGSTER_HOME``, as the CLI always runs them), followed by the catalog refresh, so the parent's
``os.wait4`` measures the peak RSS and CPU of the whole graph, Dagster included.
"""

from __future__ import annotations

import json
import time


def process_session(session: str) -> dict:
    from click.testing import CliRunner

    from spx_dagster.cli.main import cli

    started = time.monotonic()
    result = CliRunner().invoke(cli, ["process", session, "--json"], catch_exceptions=False)
    wall = time.monotonic() - started
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return {
        "exit_code": result.exit_code,
        "wall_s": wall,
        "stderr": result.stderr[-2000:],
        **document,
    }
