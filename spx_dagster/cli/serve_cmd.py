"""``spx-data serve``: the Dagster web UI and daemon on spx-data's instance (``dagster dev``).

The instance is ``DAGSTER_HOME`` (default ``$SPX_DATA_HOME/dagster``, created with spx-data's
``dagster.yaml`` if missing, pool limits applied from the settings) and the code location is the
installed module ``spx_dagster.definitions``, so it works from any directory. ``dagster dev``
runs in its own session: Ctrl-C (or SIGTERM) here is forwarded to it once, it stops the
webserver and the daemon, and this command waits for that before it exits with 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import fail, note, say, warn

CODE_LOCATION_MODULE = "spx_dagster.definitions"
DEFAULT_PORT = 3000
DEFAULT_HOST = "127.0.0.1"
# How long the UI may take to answer after start (imports, code server, instance migration).
READY_TIMEOUT_S = 180.0
# How long dagster dev gets to stop its webserver and daemon before they are killed.
STOP_TIMEOUT_S = 90.0
POLL_S = 0.5

HELP = """Start the Dagster web UI and daemon on this instance (dagster dev underneath).

The UI shows the asset graph, every session partition with its status, check results with
their scores, runs and backfills; the daemon runs schedules, sensors (start spx_gap_fill to fill
gaps automatically), queued runs and backfills. Ctrl-C stops both.

\b
Example:
  spx-data serve
  spx-data serve --port 3001 --host 0.0.0.0
"""


def ui_url(host: str, port: int) -> str:
    """The address to open: a wildcard bind is reached through loopback."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served on, or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def is_ready(url: str) -> bool:
    """Whether the webserver answers (``/server_info`` is its cheapest endpoint)."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def dagster_dev_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        # `dg dev` needs a dg project; `dagster dev` is the documented way for a plain module.
        "-W",
        "ignore:Function `dev_command` is superseded",
        "-m",
        "dagster",
        "dev",
        "-m",
        CODE_LOCATION_MODULE,
        "--host",
        host,
        "--port",
        str(port),
    ]


class _StopRequest:
    """Records SIGINT/SIGTERM so the supervising loop can forward them once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal = signal.SIGINT

    def __call__(self, signum: int, _frame) -> None:
        self.signal = signal.Signals(signum)
        self.event.set()


def _stop(process: subprocess.Popen) -> None:
    """Ask dagster dev to stop (it stops the webserver and daemon), then make sure of it."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
        return
    except subprocess.TimeoutExpired:
        warn(f"dagster dev did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
    # Its webserver and daemon share its process group (its own session). A clean stop leaves
    # run workers in flight alone: they finish their session and record the result.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def supervise(process: subprocess.Popen, url: str, stop: _StopRequest) -> int:
    """Announce the UI once it answers; return the exit code when dagster dev ends or we stop."""
    started = time.monotonic()
    ready = False
    while process.poll() is None:
        if stop.event.wait(POLL_S):
            note("stopping the Dagster webserver and daemon…")
            _stop(process)
            note("stopped")
            return exit_codes.INTERRUPTED
        if not ready and is_ready(url):
            ready = True
            say(f"Dagster UI: {url}  (Ctrl-C stops the webserver and the daemon)")
        elif not ready and time.monotonic() - started > READY_TIMEOUT_S:
            warn(f"the UI has not answered at {url} after {READY_TIMEOUT_S:.0f} s; still waiting")
            started = time.monotonic()
    _stop(process)
    fail(
        f"dagster dev exited with code {process.returncode}; its messages above say why "
        f"(run `spx-data config validate` if they mention the settings)",
        exit_codes.WORK_FAILED,
    )


@click.command("serve", help=HELP)
@click.option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port of the web UI.",
)
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address the web UI listens on (0.0.0.0: every interface).",
)
def serve(port: int, host: str) -> None:
    from spx_dagster.core.config import ConfigError, load_settings
    from spx_dagster.ops.instance import open_instance

    try:
        settings = load_settings()
    except ConfigError as error:
        fail(str(error), exit_codes.USAGE)
    problem = port_problem(host, port)
    if problem is not None:
        fail(
            f"cannot serve on {host}:{port}: {problem}; choose another port with --port "
            f"(e.g. --port {port + 1 if port < 65535 else 3000}) or stop what uses it",
            exit_codes.USAGE,
        )
    try:
        open_instance(settings).dispose()  # writes dagster.yaml if missing, sets pool limits
    except Exception as error:  # a broken dagster.yaml or an unreachable Postgres
        home = os.environ.get("DAGSTER_HOME", "DAGSTER_HOME")
        fail(
            f"cannot open the Dagster instance at {home}: {error}; fix {home}/dagster.yaml "
            "(or move it away to get spx-data's default written again)",
            exit_codes.USAGE,
        )
    home = os.environ["DAGSTER_HOME"]
    url = ui_url(host, port)
    note(
        f"starting the Dagster webserver and daemon at {url} "
        f"(instance DAGSTER_HOME={home}, code location {CODE_LOCATION_MODULE})"
    )
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process = subprocess.Popen(dagster_dev_command(host, port), start_new_session=True)
        code = supervise(process, url, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(code)
