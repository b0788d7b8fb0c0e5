"""How sizes and rates are written for people: one unit system in every command.

Sizes are decimal (1 kB = 1,000 B, 1 MB = 10^6 B, 1 GB = 10^9 B), as ``storage.min_free_gb``,
the ``mb_per_min`` figures and disk vendors count; nothing prints KiB/MiB/GiB. Row rates read
``6.58M rows/min`` in ``process``, ``status`` and ``perf`` alike.
"""

from __future__ import annotations


def human_bytes(value: float | None) -> str:
    """``950 B`` / ``12.3 kB`` / ``4.6 MB`` / ``1.2 GB`` / ``3.0 TB``; ``-`` for unknown."""
    if value is None:
        return "-"
    value = float(value)
    for limit, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(value) >= limit:
            return f"{value / limit:.1f} {suffix}"
    return f"{value:.0f} B"


def human_count(value: float | None) -> str:
    """``950`` / ``12.3k`` / ``4.56M``; ``-`` for unknown."""
    if value is None:
        return "-"
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


def human_rows_per_min(value: float | None) -> str:
    """``6.58M rows/min`` (``0 rows/min`` before the first rows); ``-`` for unknown."""
    return "-" if value is None else f"{human_count(value)} rows/min"


def human_seconds(seconds: float | None) -> str:
    """A duration for people: ``42.0 s``, ``3 min 05 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
