"""Disk space: estimate what a session needs and refuse to start when it does not fit.

A refusal names what else occupies the short filesystem that spx-data can free: the temp stages
unpublished sessions left behind (which sessions, how large) and the command that deletes them.
Sizes are written by ``core/units.human_bytes`` (decimal units), as in every command.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage.cleanup import TempStage, remove_command, session_temp_stages
from spx_dagster.core.storage.location import local_path
from spx_dagster.core.thetadata.vendor import INTERVALS
from spx_dagster.core.units import human_bytes

DEFAULT_MIN_FREE_GB = 1.0
GB = 1_000_000_000
# Published parquet bytes of one full-chain session (both roots) at the 1m interval, used only
# when neither history nor the session's listing says more (list/expirations, below the Value
# tier, counts no contracts). Rough figures from the published scale (15k-30k contracts).
DEFAULT_SESSION_BYTES: dict[str, int] = {
    "greeks": 400_000_000,
    "quote": 300_000_000,
    "eod": 4_000_000,
    "open_interest": 1_000_000,
    "greeks_eod": 12_000_000,
}
# Published parquet bytes per row, rounded up from published sessions (real and simulated: zstd
# over sorted contracts), for the estimate from a session's listing when there is no history.
BYTES_PER_ROW: dict[str, int] = {
    "greeks": 48,
    "quote": 40,
    "eod": 160,
    "open_interest": 48,
    "greeks_eod": 560,
}
# Footer, schema and row-group metadata of one dataset's file, whatever its rows.
FILE_OVERHEAD_BYTES = 16_000
# Minutes of a regular session (09:30 to 16:00 ET); intraday datasets hold one row per interval
# per contract, both ends included.
SESSION_MINUTES = 390
# Headroom over the largest recent session of the same dataset.
HISTORY_HEADROOM = 1.25
# How many recent sessions the estimate looks at.
HISTORY_WINDOW = 20
# Temp space a session uses besides its published files, in published files: the staged
# responses and the validated parts (both LZ4 Arrow IPC, ``stage_tables.py``). Measured on a
# full-chain day (bench/RESULTS.md): 472 MB staged + 474 MB validated for 250 MB published, 3.8.
TEMP_COPIES = 4


class InsufficientDiskSpace(OSError):
    """Not enough free space to process a session; the message says where and what to do.

    ``leftovers`` are temp stages of unpublished sessions on the same filesystem: what spx-data
    itself occupies there, named with their size and the command that frees them.
    """

    def __init__(
        self,
        path: Path,
        free: int,
        need: int,
        min_free: int,
        leftovers: Sequence[TempStage] = (),
    ) -> None:
        self.path, self.free, self.need, self.min_free = Path(path), free, need, min_free
        self.leftovers = tuple(leftovers)
        message = (
            f"not enough free disk space at {path}: {human_bytes(free)} free, a session needs "
            f"~{human_bytes(need)} plus the {human_bytes(min_free)} kept free "
            "(storage.min_free_gb). "
        )
        if self.leftovers:
            held = sum(stage.bytes for stage in self.leftovers)
            named = ", ".join(f"{s.session} ({human_bytes(s.bytes)})" for s in self.leftovers)
            message += (
                f"Temp stages left there by runs that did not publish hold {human_bytes(held)}: "
                f"{named}; if no run of those sessions is in progress, free them with "
                f"`{remove_command(self.leftovers)}` (a later run fetches them again). "
            )
        super().__init__(
            message + "Free some space, move storage.output_dir / storage.temp_dir to a larger "
            "disk, or lower storage.min_free_gb."
        )


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says a filesystem is out of space."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InsufficientDiskSpace):
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        current = current.__cause__ or current.__context__
    return False


def same_filesystem(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` (or their nearest existing ancestors) share a filesystem."""
    return os.stat(_existing_ancestor(a)).st_dev == os.stat(_existing_ancestor(b)).st_dev


def _existing_ancestor(path: Path) -> Path:
    path = local_path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged user on the filesystem that holds (or will hold) ``path``."""
    return shutil.disk_usage(_existing_ancestor(path)).free


def check_free_space(path: Path, need_bytes: int, min_free_gb: float = DEFAULT_MIN_FREE_GB) -> int:
    """Raise InsufficientDiskSpace unless ``need_bytes`` fit, keeping ``min_free_gb``."""
    free = free_bytes(path)
    min_free = int(min_free_gb * GB)
    if free - need_bytes < min_free:
        raise InsufficientDiskSpace(Path(path), free, int(need_bytes), min_free)
    return free


def rows_per_contract(dataset: str, interval: str = "1m") -> int:
    """Rows one contract contributes to ``dataset`` in a regular session: 391 at 1m, or one."""
    entry = DATASETS.get(dataset)
    if entry is None or not entry.intraday:
        return 1
    return SESSION_MINUTES * 60_000 // INTERVALS[interval] + 1


def estimate_session_bytes(
    datasets: Iterable[str],
    history: Iterable[Mapping[str, int]] | None = None,
    *,
    interval: str = "1m",
    contracts: int | None = None,
) -> int:
    """Published bytes one session of ``datasets`` is expected to take.

    ``history`` holds bytes per dataset of recent sessions (e.g. ``ManifestSummary.dataset_bytes``
    of the last published ones, newest last); the estimate is the largest of the last
    ``HISTORY_WINDOW`` times ``HISTORY_HEADROOM``. Without history, from the session's listing:
    ``contracts`` × rows per contract × ``BYTES_PER_ROW``; without a contract count either,
    ``DEFAULT_SESSION_BYTES`` scaled by the interval for intraday datasets.
    """
    recent = list(history or [])[-HISTORY_WINDOW:]
    total = 0
    for name in datasets:
        seen = [int(h[name]) for h in recent if h.get(name)]
        if seen:
            total += int(max(seen) * HISTORY_HEADROOM)
            continue
        rows = rows_per_contract(name, interval)
        if contracts:
            total += contracts * rows * BYTES_PER_ROW.get(name, 600) + FILE_OVERHEAD_BYTES
            continue
        base = DEFAULT_SESSION_BYTES.get(name, 10_000_000)
        if rows > 1:  # intraday: 1s holds 60 times the rows of 1m
            base = int(base * INTERVALS["1m"] / INTERVALS[interval])
        total += base
    return total


def has_history(datasets: Iterable[str], history: Iterable[Mapping[str, int]]) -> bool:
    """Whether every dataset of ``datasets`` has a published size to estimate from."""
    recent = list(history)[-HISTORY_WINDOW:]
    return all(any(h.get(name) for h in recent) for name in datasets)


def check_session_space(
    output_dir: Path,
    temp_dir: Path,
    published_bytes: int,
    min_free_gb: float = DEFAULT_MIN_FREE_GB,
) -> None:
    """Check both places a session writes to; when they share a filesystem, check the sum.

    A refusal lists the temp stages under ``temp_dir`` that sit on the short filesystem.
    """
    temp_need = int(published_bytes * TEMP_COPIES)
    try:
        if same_filesystem(output_dir, temp_dir):
            check_free_space(output_dir, published_bytes + temp_need, min_free_gb)
        else:
            check_free_space(temp_dir, temp_need, min_free_gb)
            check_free_space(output_dir, published_bytes, min_free_gb)
    except InsufficientDiskSpace as refused:
        if not same_filesystem(refused.path, temp_dir):
            raise
        leftovers = session_temp_stages(temp_dir)
        if not leftovers:
            raise
        raise InsufficientDiskSpace(
            refused.path, refused.free, refused.need, refused.min_free, leftovers
        ) from None
