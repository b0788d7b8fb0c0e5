"""`dagster asset materialize` from the command line works against the simulator (issue #4)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from spx_dagster.core.storage import load_manifest, verify_session

SESSION = dt.date(2024, 11, 4)


def test_dagster_asset_materialize_publishes_the_session(pipeline_home):
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [
            str(dagster),
            "asset",
            "materialize",
            "-m",
            "spx_dagster.definitions",
            "--select",
            "key:spx/*",
            "--partition",
            SESSION.isoformat(),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stderr + result.stdout
    manifest = load_manifest(pipeline_home.output_dir, SESSION)
    assert manifest is not None and manifest.source.kind == "simulator"
    assert verify_session(pipeline_home.output_dir, SESSION).ok
    assert (pipeline_home.home / "catalog.duckdb").exists()
