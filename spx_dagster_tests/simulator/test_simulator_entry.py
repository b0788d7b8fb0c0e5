"""The simulator starts without the CLI package (issue 11: on 43668ef its `__main__` imported
`spx_dagster.cli.simulator_cmd`, so starting it loaded the CLI layer)."""

from __future__ import annotations

import subprocess
import sys


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
