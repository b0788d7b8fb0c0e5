"""How many requests one process keeps outstanding at a ThetaTerminal.

ThetaTerminal serves a fixed number of *outstanding* requests per subscription tier
(``vendor.TIER_CONCURRENCY``) and queues or refuses (429) the rest. Inside one process every
client for the same terminal shares one ``threading.BoundedSemaphore`` from this registry, so the
limit holds across all threads and all client objects. Across processes (several Dagster runs at
once) the limit is Dagster's concurrency pool named ``thetadata``, sized to the tier.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("spx_dagster.thetadata")

_lock = threading.Lock()
_registry: dict[str, tuple[int, threading.BoundedSemaphore]] = {}


def request_slots(base_url: str, concurrency: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore for ``base_url``, sized to ``concurrency``.

    A later request for a different size replaces the entry (with a warning): clients created
    afterwards use the new size, requests in flight finish under the old one.

    Args:
        base_url: The terminal's base URL (normalised: no trailing slash).
        concurrency: Outstanding requests allowed (the tier's limit, or lower).
    """
    if concurrency < 1:
        raise ValueError(
            f"thetadata.concurrency must be at least 1, got {concurrency}: "
            "set it to your subscription tier's limit (free 1, value 2, standard 4, pro 8)"
        )
    key = base_url.rstrip("/")
    with _lock:
        current = _registry.get(key)
        if current is not None and current[0] == concurrency:
            return current[1]
        if current is not None:
            log.warning(
                "concurrency for %s changes from %d to %d for clients created from now on",
                key,
                current[0],
                concurrency,
            )
        slots = threading.BoundedSemaphore(concurrency)
        _registry[key] = (concurrency, slots)
        return slots
