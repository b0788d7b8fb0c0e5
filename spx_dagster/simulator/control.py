"""Driving a simulator in another process: the control API client and a subprocess runner.

Dagster runs steps in subprocesses and ``spx-data simulator`` runs on its own, so faults,
the connection state and the counters are also reachable over HTTP under ``/_sim/`` (a path
the real terminal does not use):

    GET    /_sim/stats                     counters (as SimulatorServer.stats())
    DELETE /_sim/stats                     reset the counters
    GET    /_sim/info                      port, profile, chain, seed, api_version, ...
    GET    /_sim/faults                    rules in force
    POST   /_sim/faults                    add a rule (JSON object of FaultRule fields)
    DELETE /_sim/faults                    remove every added rule
    POST   /_sim/connected?value=false     474 on data paths, DISCONNECTED on the status path
    GET    /_sim/anomalies[?date=YYYY-MM-DD]  counts per family; with date, what that session
                                           carries (family, kind, dataset, root, expiration,
                                           strike, right, timestamp, end_timestamp, detail)
    POST   /_sim/anomalies                 plant more: {"family": "parity", "count": 2}
    DELETE /_sim/anomalies                 plant nothing from now on
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from spx_dagster.simulator.faults import FaultRule
from spx_dagster.simulator.server import CONTROL_PREFIX


class SimulatorControl:
    """Control a running simulator over HTTP.

    Args:
        base_url: The simulator's base URL, e.g. ``http://127.0.0.1:25503``.
        timeout_s: Timeout of each control request.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def _call(self, method: str, action: str, **kwargs) -> dict:
        url = f"{self.base_url}{CONTROL_PREFIX}/{action}"
        try:
            response = self._session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.ConnectionError as exc:
            raise ConnectionError(
                f"no simulator answering at {self.base_url} ({exc}): start one with "
                "spx-data simulator"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", response.text)
            except ValueError:
                detail = response.text
            raise ValueError(f"{method} {url} answered {response.status_code}: {detail}")
        return response.json()

    def add_fault(self, rule: FaultRule | dict) -> int:
        """Inject a rule; returns its id."""
        payload = rule.to_dict() if isinstance(rule, FaultRule) else FaultRule(**rule).to_dict()
        return int(self._call("POST", "faults", json=payload)["id"])

    def clear_faults(self) -> int:
        return int(self._call("DELETE", "faults")["cleared"])

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def add_anomaly(self, family: str, count: int = 1) -> dict[str, int]:
        """Plant ``count`` more anomalies of ``family`` per session; returns the counts."""
        payload = {"family": family, "count": count}
        return self._call("POST", "anomalies", json=payload)["anomalies"]

    def clear_anomalies(self) -> int:
        return int(self._call("DELETE", "anomalies")["cleared"])

    def anomalies(self, date: dt.date | str | None = None) -> dict:
        """Counts per family; with ``date`` also ``planted``: that session's records."""
        params = {} if date is None else {"date": str(date)}
        return self._call("GET", "anomalies", params=params)

    def set_connected(self, connected: bool) -> None:
        self._call("POST", "connected", params={"value": "true" if connected else "false"})

    def stats(self) -> dict:
        """Counters, with ``by_status`` keyed by int like ``SimulatorServer.stats()``."""
        stats = self._call("GET", "stats")
        stats["by_status"] = {int(k): v for k, v in stats.get("by_status", {}).items()}
        return stats

    def reset_stats(self) -> dict:
        return self._call("DELETE", "stats")

    def info(self) -> dict:
        return self._call("GET", "info")

    def close(self) -> None:
        self._session.close()


class SimulatorProcess:
    """A simulator in a child process (``python -m spx_dagster.simulator``).

    Use as a context manager, or ``start()``/``stop()``. The child writes a ready file with its
    port once it listens; ``base_url`` and ``control`` are available after ``start()``.

    Args:
        port: 0 picks a free port.
        startup_timeout_s: How long to wait for the child to listen.
        **options: ``host``, ``profile``, ``chain``, ``seed``, ``api_version``,
            ``concurrency``, ``queue``, ``today`` (as for ``SimulatorServer``); ``anomaly``: a
            list of ``FAMILY[:N]`` (one ``--anomaly`` each).
    """

    def __init__(self, *, port: int = 0, startup_timeout_s: float = 60.0, **options) -> None:
        self.port = port
        self.options = options
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.info: dict = {}
        self._log = None
        self._dir = tempfile.TemporaryDirectory(prefix="spx-sim-")

    def command(self, ready_file: Path) -> list[str]:
        args = [sys.executable, "-m", "spx_dagster.simulator", "--port", str(self.port)]
        for key, value in self.options.items():
            for one in value if isinstance(value, list | tuple) else [value]:
                args += [f"--{key.replace('_', '-')}", str(one)]
        return [*args, "--ready-file", str(ready_file)]

    def start(self) -> SimulatorProcess:
        ready = Path(self._dir.name) / "ready.json"
        self._log = open(Path(self._dir.name) / "simulator.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command(ready), stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if ready.exists():
                self.info = json.loads(ready.read_text())
                return self
            if self.process.poll() is not None:
                output = (Path(self._dir.name) / "simulator.log").read_text(errors="replace")
                raise RuntimeError(
                    f"the simulator exited with code {self.process.returncode} before "
                    f"listening:\n{output[-2000:]}"
                )
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the simulator did not listen within {self.startup_timeout_s:g}s")

    @property
    def base_url(self) -> str:
        return self.info["base_url"]

    @property
    def control(self) -> SimulatorControl:
        return SimulatorControl(self.base_url)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Terminate the child (SIGTERM, then SIGKILL) and return its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
        self._dir.cleanup()
        return process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
