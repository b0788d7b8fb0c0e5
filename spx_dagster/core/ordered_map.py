"""``ordered_map``: work on a thread pool, results in input order, a bounded number ahead.

For stages that stream a session's parts through pyarrow, which releases the GIL for most of
its work (parquet decoding and encoding, compute kernels): two threads use two cores while
memory stays bounded by the few parts in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    pool: ThreadPoolExecutor, work: Callable[[T], R], items: Iterable[T], *, ahead: int
) -> Iterator[R]:
    """``work(item)`` for each item on ``pool``, yielded in order, at most ``ahead`` items
    submitted beyond the one the consumer waits for; an error cancels what has
    not started."""
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
