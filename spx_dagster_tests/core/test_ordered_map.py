"""``ordered_map``: results in input order, never more than ``ahead`` items past the consumer."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from spx_dagster.core.ordered_map import ordered_map


def test_results_come_in_input_order_whatever_finishes_first():
    rng = random.Random(7)

    def slow_square(n: int) -> int:
        time.sleep(rng.uniform(0, 0.01))
        return n * n

    with ThreadPoolExecutor(2) as pool:
        assert list(ordered_map(pool, slow_square, range(30), ahead=2)) == [
            n * n for n in range(30)
        ]


def test_the_producer_stays_at_most_ahead_items_past_the_consumer():
    started: list[int] = []
    lock = threading.Lock()

    def record(n: int) -> int:
        with lock:
            started.append(n)
        return n

    with ThreadPoolExecutor(2) as pool:
        for consumed in ordered_map(pool, record, range(20), ahead=2):
            time.sleep(0.005)  # a slow consumer: the work must wait for it
            with lock:
                assert max(started) <= consumed + 2


def test_an_error_reaches_the_consumer_and_cancels_what_has_not_started():
    ran: list[int] = []

    def fail_at_three(n: int) -> int:
        ran.append(n)
        if n == 3:
            raise ValueError("part 3 is broken")
        return n

    got = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="part 3"):
        for value in ordered_map(pool, fail_at_three, range(100), ahead=1):
            got.append(value)
    assert got == [0, 1, 2]
    assert max(ran) <= 4  # the one submitted ahead at most, never the other 95
