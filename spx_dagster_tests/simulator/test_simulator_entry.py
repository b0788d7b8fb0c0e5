"""The simulator starts without the CLI package (issue 11: on 43668ef its `__main__` imported
`spx_dagster.cli.simulator_cmd`, so starting it loaded the CLI layer)."""

from __future__ import annotations

import subprocess
import sys

# Runs `python -m spx_dagster.simulator` in a fresh interpreter; once the server answers its
# readiness probe over HTTP, a watcher thread prints the spx_dagster.cli modules loaded and exits.
STARTED = """
import json, os, pathlib, runpy, sys, threading, time, urllib.request

ready, status_path = pathlib.Path(sys.argv[1]), sys.argv[2]

def answer(url):
    for _ in range(600):
        try:
            return urllib.request.urlopen(url, timeout=10).read().decode()
        except OSError:
            time.sleep(0.05)
    os._exit(3)

def watch():
    while not ready.exists() or not ready.read_text().strip():
        time.sleep(0.05)
    status = answer(json.loads(ready.read_text())["base_url"] + status_path)
    loaded = sorted(m for m in sys.modules if m.startswith("spx_dagster.cli"))
    print("PROBE:", status.strip(), flush=True)
    print("CLI MODULES:", loaded, flush=True)
    os._exit(0)

threading.Thread(target=watch, daemon=True).start()
sys.argv = ["python -m spx_dagster.simulator", "--port", "0", "--ready-file", str(ready)]
runpy.run_module("spx_dagster.simulator", run_name="__main__")
"""


def test_the_simulator_entry_point_imports_nothing_of_the_cli():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['python -m spx_dagster.simulator', '--help']\n"
        "try:\n"
        "    runpy.run_module('spx_dagster.simulator', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('spx_dagster.cli'))\n"
        "print('CLI MODULES:', loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--profile" in result.stdout  # the simulator's own help was printed
    assert "CLI MODULES: []" in result.stdout


def test_a_started_simulator_has_imported_nothing_of_the_cli(tmp_path):
    from spx_dagster.core.thetadata.vendor import HEALTH_PATHS, HEALTH_READY_TEXT

    ready = tmp_path / "ready.json"
    result = subprocess.run(
        [sys.executable, "-c", STARTED, str(ready), HEALTH_PATHS["v3"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"PROBE: {HEALTH_READY_TEXT}" in result.stdout  # it was serving
    assert "CLI MODULES: []" in result.stdout, result.stdout
