"""The machine's busy CPU seconds, read around each session so a backfill's pace can be foretold.

On a machine whose cores are the bottleneck (two cores running run workers, the daemon and the
terminal at once) a backfill's pace is the CPU one session costs the whole machine divided by its
cores, whatever its runs' start and end times say. No single process can tell that cost: every
run worker, the daemon and the terminal each hold a share. So each session records the machine's
busy CPU counter (``/proc/stat``: every process, ours or not) when its run's process loaded this
module (the first session a process runs claims its start-up: a run worker's code-location load
is part of the session's cost) or else when its fetch starts, and again when its publish ends;
and each backfill tags its runs with the counter at its submission; over a finished backfill,
the counter's rise from its submission (or its first session's start) to its last session's end,
divided by its sessions, is what one session cost (``core.estimates``).

Counters are only comparable within one boot, so each reading carries the boot's id. Off Linux
there is no reading (None) and the estimate goes on without it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# The manifest's ``extra`` key of a session's readings: {"start": reading, "end": reading}.
CPU_EXTRA = "cpu"
PROC_STAT = Path("/proc/stat")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal guest guest_nice; guest
# time is already inside user. Idle and iowait are the not-busy ones.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


@dataclass(frozen=True)
class CpuReading:
    """The machine's busy CPU seconds since boot, at one instant (``at``, epoch seconds)."""

    boot: str
    busy_s: float
    cores: int
    at: float


def usable_cores() -> int:
    """Cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def read_cpu() -> CpuReading | None:
    """The machine's busy CPU seconds now, or None where ``/proc`` does not tell them."""
    try:
        boot = BOOT_ID.read_text().strip()
        with PROC_STAT.open() as stat:
            first = stat.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu" or len(first) < 9:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        busy = sum(int(first[1 + i]) for i in _BUSY_FIELDS)
    except ValueError:
        return None
    return CpuReading(boot=boot, busy_s=busy / ticks, cores=usable_cores(), at=time.time())


def reading_to_json(reading: CpuReading | None) -> dict | None:
    """A reading as stored in the temp stage and the manifest."""
    if reading is None:
        return None
    return {
        "boot": reading.boot,
        "busy_s": round(reading.busy_s, 2),
        "cores": reading.cores,
        "at": round(reading.at, 3),
    }


def reading_from_json(data: object) -> CpuReading | None:
    """A stored reading, or None when it is missing or not one."""
    if not isinstance(data, dict):
        return None
    try:
        return CpuReading(
            str(data["boot"]), float(data["busy_s"]), int(data["cores"]), float(data["at"])
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class CpuWindow:
    """A session's readings: when its run's process loaded the code or its fetch started
    (``session_start_reading``), and when its publish ended (one boot)."""

    boot: str
    cores: int
    start_at: float
    end_at: float
    start_busy_s: float
    end_busy_s: float

    @classmethod
    def between(cls, start: CpuReading | None, end: CpuReading | None) -> CpuWindow | None:
        """The window of two readings, or None unless both exist, in one boot, in order."""
        if start is None or end is None or start.boot != end.boot or end.at < start.at:
            return None
        return cls(start.boot, end.cores, start.at, end.at, start.busy_s, end.busy_s)

    @property
    def busy_s(self) -> float:
        """The machine's busy CPU seconds within the window (every process's)."""
        return self.end_busy_s - self.start_busy_s

    def as_tuple(self) -> tuple[str, int, float, float, float, float]:
        """The window as a manifest summary keeps it (``from_json`` reads it back)."""
        return (
            self.boot,
            self.cores,
            self.start_at,
            self.end_at,
            self.start_busy_s,
            self.end_busy_s,
        )

    @classmethod
    def from_json(cls, data: object) -> CpuWindow | None:
        """A window from ``as_tuple`` (or its JSON list), or None when it is not one."""
        if not isinstance(data, (list, tuple)) or len(data) != 6:
            return None
        try:
            return cls(str(data[0]), int(data[1]), *(float(v) for v in data[2:]))
        except (TypeError, ValueError):
            return None


def window_of_manifest_extra(extra: dict) -> CpuWindow | None:
    """The window a manifest's ``extra`` records (None for manifests written before it)."""
    readings = extra.get(CPU_EXTRA)
    if not isinstance(readings, dict):
        return None
    return CpuWindow.between(
        reading_from_json(readings.get("start")), reading_from_json(readings.get("end"))
    )


_at_import: CpuReading | None = None
_claim_lock = threading.Lock()


def session_start_reading() -> CpuReading | None:
    """The reading a session's window opens with: the one taken when this process loaded this
    module, for the first session that asks (the process's start-up was for it), else now."""
    global _at_import
    with _claim_lock:
        first, _at_import = _at_import, None
    return first or read_cpu()


_at_import = read_cpu()
