"""What every benchmark shares: the result line, the machine, child processes, the simulator.

Figures that depend on one process (peak RSS, CPU seconds) are measured on a child process
started by :func:`run_child` and reaped with ``os.wait4``, so they are that process's own and
not the sum of everything the benchmark runner did before. The simulator always runs in its own
process (``SimulatorProcess``): generating a full chain costs about a core, and it must not share
the interpreter (and its GIL) with the code being measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SESSION = dt.date(2024, 11, 4)  # a Monday: 75 expirations, 27,130 contracts in the full chain
RESULT_PREFIX = "BENCH-RESULT "  # how a child marks its result line on stdout


def progress(message: str) -> None:
    """One line of progress on stderr (stdout is for the JSON result lines only)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """The machine and the versions the figures were measured with."""
    import psutil

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "dagster": _version("dagster"),
        "pyarrow": _version("pyarrow"),
        "platform": platform.platform(terse=True),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: above the core count means the figures are stretched."""
    return [round(x, 2) for x in os.getloadavg()]


def _our_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # every reaped descendant
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy_cpu_s() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class CpuMeter:
    """How busy the machine was during a benchmark, ours and everybody else's.

    The load average counts our own processes too; this separates them: the machine's busy CPU
    seconds minus those of this process and its (reaped) descendants are the other users'.
    Read ``figures()`` only after every child of the benchmark has exited.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.load_before = load_average()
        self._machine = _machine_busy_cpu_s()
        self._ours = _our_cpu_s()

    def figures(self) -> dict:
        wall = max(time.monotonic() - self.started, 1e-9)
        machine = _machine_busy_cpu_s() - self._machine
        ours = _our_cpu_s() - self._ours
        return {
            "benchmark_seconds": round(wall, 1),
            "load_average": {"before": self.load_before, "after": load_average()},
            "cores_used_by_us": round(ours / wall, 2),
            "cores_used_by_others": round(max(machine - ours, 0.0) / wall, 2),
        }


def result_line(
    name: str, figures: Mapping[str, Any], *, target: Any, met: bool | None, meter: CpuMeter
) -> dict:
    """The JSON document one benchmark prints: its figures, target, verdict and the machine."""
    return {
        "benchmark": name,
        **figures,
        "target": target,
        "met": met,
        **meter.figures(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


def per_minute(amount: float, seconds: float) -> float:
    return amount * 60.0 / seconds if seconds > 0 else 0.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# ---------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildResult:
    """What a child function returned, with the child's own resource figures."""

    value: Any
    wall_s: float
    cpu_s: float  # user + system, every thread of the child
    peak_rss_mb: float  # ru_maxrss of the child, in MB (10^6 bytes)


class ChildFailed(RuntimeError):
    """A benchmark's child process exited with an error."""


def run_child(target: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> ChildResult:
    """Call ``bench.<module>:<function>(**kwargs)`` in a fresh interpreter and measure it.

    The child's stderr goes to ours (progress); its result comes back as JSON on stdout. CPU
    and peak RSS come from ``os.wait4`` on that child alone.

    Args:
        target: ``module:function`` inside the ``bench`` package, e.g. ``pipeline_run:run``.
        env: Extra environment variables for the child (the parent's environment is unchanged).
        **kwargs: JSON-serialisable keyword arguments of the function.
    """
    command = [sys.executable, "-m", "bench.child", target]
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(kwargs, default=str))
    process.stdin.close()
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    process.stdout.close()
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise ChildFailed(
            f"bench child {target} exited with code {process.returncode} "
            f"(its traceback is above on stderr); stdout ended with: {output[-500:]!r}"
        )
    return ChildResult(
        value=json.loads(lines[-1][len(RESULT_PREFIX) :]),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss * 1024 / 1e6,  # ru_maxrss is in KiB on Linux
    )


# ---------------------------------------------------------------------------------------------
# Homes and the simulator
# ---------------------------------------------------------------------------------------------
@contextmanager
def temp_home(prefix: str, *, fast: bool = False) -> Iterator[Path]:
    """A throw-away SPX_DATA_HOME; ``fast`` puts it on tmpfs (for bulk SQLite seeding)."""
    shm = Path("/dev/shm")
    where = shm if fast and shm.is_dir() and os.access(shm, os.W_OK) else None
    # A daemon's code server may still write its last heartbeat while the home is removed.
    with tempfile.TemporaryDirectory(
        prefix=f"spx-bench-{prefix}-", dir=where, ignore_cleanup_errors=True
    ) as tmp:
        yield Path(tmp)


def pipeline_env(home: Path, base_url: str, **settings: Any) -> dict[str, str]:
    """Environment for a pipeline in ``home`` against ``base_url``; ``settings`` by dotted key
    with ``__`` for the dot, e.g. ``processing__max_dte=7``."""
    env = {
        "SPX_DATA_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "SPX_DATA_THETADATA__BASE_URL": base_url,
        "SPX_DATA_STORAGE__MIN_FREE_GB": "0",
        "SPX_DATA_PROCESSING__START_DATE": "2024-01-02",
    }
    for key, value in settings.items():
        if value is not None:
            env[f"SPX_DATA_{key.upper()}"] = str(value)
    return env


@contextmanager
def simulator(*, profile: str = "fast", chain: str = "full") -> Iterator[Any]:
    """A simulator in its own process (seed 0, concurrency 4 like the Standard tier)."""
    from spx_dagster.simulator import SimulatorProcess

    progress(f"starting the simulator (profile {profile}, chain {chain})")
    with SimulatorProcess(profile=profile, chain=chain, seed=0) as sim:
        yield sim


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (e.g. the simulator)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system
