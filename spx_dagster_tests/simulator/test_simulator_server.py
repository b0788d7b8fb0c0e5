"""The simulator over real HTTP: determinism, the terminal's request limit, faults, control API."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.core.thetadata.vendor import (
    ENDPOINTS,
    HEALTH_DISCONNECTED_TEXT,
    HEALTH_PATHS,
    STATUS_CODES,
)
from spx_dagster.simulator import (
    PROFILES,
    FaultRule,
    PortInUse,
    SimulatorControl,
    SimulatorProcess,
    SimulatorServer,
)
from spx_dagster.simulator.faults import FaultBook, RequestInfo

TODAY = dt.date(2025, 1, 31)
SESSION = dt.date(2024, 11, 4)
GREEKS = "/v3" + ENDPOINTS["greeks"].path
PARAMS = {"symbol": "SPXW", "expiration": "20241108", "date": "20241104", "interval": "1m"}
CODE = {s.name: s.code for s in STATUS_CODES.values()}


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(port=0, chain="tiny", seed=0, today=TODAY) as server:
        yield server


@pytest.fixture
def fresh(sim):
    sim.clear_faults()
    sim.set_connected(True)
    yield sim
    sim.clear_faults()
    sim.set_connected(True)


def greeks(sim, **params) -> requests.Response:
    return requests.get(sim.base_url + GREEKS, params={**PARAMS, **params}, timeout=30)


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_bytes(sim):
    with (
        SimulatorServer(port=0, chain="tiny", seed=0, today=TODAY) as twin,
        SimulatorServer(port=0, chain="tiny", seed=1, today=TODAY) as other,
    ):
        ours, theirs, different = greeks(sim).content, greeks(twin).content, greeks(other).content
    assert ours == theirs and len(ours) > 100_000
    assert different != ours and different.split(b"\r\n")[0] == ours.split(b"\r\n")[0]


def test_a_row_does_not_depend_on_how_the_request_was_split(sim):
    whole = greeks(sim).text.split("\r\n")
    calls = greeks(sim, right="call").text.split("\r\n")
    assert calls[1:-1] == [line for line in whole[1:-1] if ",CALL," in line]
    strike = calls[1].split(",")[2]
    one = greeks(sim, strike=strike.rstrip("0").rstrip(".")).text.split("\r\n")
    assert one[1:-1] == [line for line in whole[1:-1] if line.split(",")[2] == strike]
    coarse = greeks(sim, interval="5m").text.split("\r\n")
    assert set(coarse[1:-1]) <= set(whole[1:-1])


# --------------------------------------------------------------------------------------------
# The terminal's concurrency limit and queue
# --------------------------------------------------------------------------------------------
def test_concurrency_limit_queue_and_429_past_it():
    with SimulatorServer(port=0, chain="tiny", today=TODAY, concurrency=1, queue=1) as small:
        small.add_fault(FaultRule(kind="latency", seconds=0.6, path="greeks"))
        statuses: list[int] = []
        bodies: list[str] = []
        barrier = threading.Barrier(4)

        def work() -> None:
            barrier.wait()
            response = greeks(small)
            statuses.append(response.status_code)
            bodies.append(response.text[:40])

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = small.stats()
    assert sorted(statuses) == [200, 200, CODE["OS_LIMIT"], CODE["OS_LIMIT"]]
    assert sum(b.startswith("OS_LIMIT") for b in bodies) == 2
    assert stats["max_concurrent_seen"] == 1 and stats["max_queued_seen"] == 1
    assert stats["rejected"] == 2 and stats["by_status"][CODE["OS_LIMIT"]] == 2


def test_stats_count_the_lane_seconds_served_and_their_span():
    """Two requests held 0.5 s each on two lanes at once: 1 lane-second over a 0.5 s span (the
    figures benchmarks divide by the lanes for the terminal's ideal time)."""
    with SimulatorServer(port=0, chain="tiny", today=TODAY, concurrency=2, queue=0) as small:
        small.add_fault(FaultRule(kind="latency", seconds=0.5, path="greeks"))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: greeks(small), range(2)))
        stats = small.stats()
        small.reset_stats()
        after_reset = small.stats()
    assert stats["lanes"] == 2
    assert 0.95 <= stats["busy_lane_s"] <= 1.5
    span = stats["last_request_end_at"] - stats["first_request_at"]
    assert 0.45 <= span <= 1.0
    assert after_reset["busy_lane_s"] == 0 and after_reset["first_request_at"] is None


def test_status_path_bypasses_the_limit():
    with SimulatorServer(port=0, chain="tiny", today=TODAY, concurrency=1, queue=0) as small:
        small.add_fault(FaultRule(kind="latency", seconds=0.5, path="greeks"))
        slow = threading.Thread(target=greeks, args=(small,))
        slow.start()
        time.sleep(0.15)
        health = requests.get(small.base_url + HEALTH_PATHS["v3"], timeout=2)
        refused = greeks(small)
        slow.join()
    assert health.status_code == 200 and refused.status_code == CODE["OS_LIMIT"]


# --------------------------------------------------------------------------------------------
# Faults on the wire
# --------------------------------------------------------------------------------------------
def test_truncate_ends_cleanly_mid_line(fresh):
    full = greeks(fresh).content
    fresh.add_fault(FaultRule(kind="truncate", path="greeks", times=1))
    cut = greeks(fresh).content  # the chunked body is properly terminated ...
    assert 0 < len(cut) < len(full) and full.startswith(cut)
    assert not cut.endswith(b"\r\n")  # ... but its last row is cut
    assert greeks(fresh).content == full  # times=1: spent


def test_drop_mid_body_breaks_the_connection(fresh):
    fresh.add_fault(FaultRule(kind="drop_mid_body", path="greeks", times=1))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        greeks(fresh).content  # noqa: B018 - reading the body is the point
    assert greeks(fresh).status_code == 200


def test_slow_body_and_latency(fresh):
    full = greeks(fresh).content
    fresh.add_fault(FaultRule(kind="slow_body", seconds=0.005, path="greeks", times=1))
    started = time.monotonic()
    slow = greeks(fresh).content
    assert slow == full and time.monotonic() - started >= len(full) / (16 << 10) * 0.005
    fresh.add_fault(FaultRule(kind="latency", seconds=0.3, path="greeks", times=1))
    started = time.monotonic()
    assert greeks(fresh).status_code == 200 and time.monotonic() - started >= 0.3


def test_malformed_row_and_extra_column(fresh):
    fresh.add_fault(FaultRule(kind="malformed_row", path="greeks", times=1))
    text = greeks(fresh).text
    assert text.count("#ERR") == 1
    bad = next(line for line in text.split("\r\n") if "#ERR" in line)
    assert bad.startswith("SPXW,") and bad.count(",") == text.split("\r\n")[0].count(",")
    fresh.add_fault(FaultRule(kind="extra_column", path="greeks", times=1))
    lines = greeks(fresh).text.split("\r\n")
    assert "condition_flags" in lines[0].split(",")
    assert {line.count(",") for line in lines[:-1]} == {lines[0].count(",")}


def test_status_rules_by_date_root_and_times(fresh):
    fresh.add_fault(FaultRule(kind="status", status=472, date="2024-11-04", root="SPXW"))
    assert greeks(fresh).status_code == CODE["NO_DATA"]
    assert greeks(fresh).text.startswith("NO_DATA:")
    assert greeks(fresh, date="20241105").status_code == 200
    fresh.clear_faults()
    fresh.add_fault(FaultRule(kind="status", status=571, times=2))
    assert [greeks(fresh).status_code for _ in range(3)] == [571, 571, 200]
    fresh.add_fault(FaultRule(kind="status", status=474, root="SPX"))
    assert greeks(fresh).status_code == 200


def test_probability_faults_are_seeded_per_request():
    def run(seed: int) -> list[int]:
        with SimulatorServer(port=0, chain="tiny", seed=seed, today=TODAY) as server:
            server.add_fault(FaultRule(kind="status", status=500, probability=0.5))
            return [greeks(server, interval=f"{m}m").status_code for m in (1, 5, 15, 30)] + [
                greeks(server).status_code for _ in range(6)
            ]

    first = run(3)
    assert first == run(3) and set(first) == {200, 500}


def test_disconnected_terminal(fresh):
    fresh.set_connected(False)
    health = requests.get(fresh.base_url + HEALTH_PATHS["v3"], timeout=5)
    assert health.status_code == 200 and health.text == HEALTH_DISCONNECTED_TEXT
    assert greeks(fresh).status_code == CODE["DISCONNECTED"]


def test_port_in_use_is_reported(sim):
    with pytest.raises(PortInUse, match=f"port {sim.port} .* already in use"):
        SimulatorServer(port=sim.port, chain="tiny").start()


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
def test_profile_rates_are_seeded_and_near_their_documented_values():
    def tally(seed: int) -> Counter:
        book = FaultBook("hostile", seed)
        counts: Counter[str] = Counter()
        for n in range(4000):
            plan = book.plan(RequestInfo.from_query(GREEKS, {"symbol": "SPXW", "n": str(n)}))
            counts.update(plan.fired)
        return counts

    counts = tally(0)
    assert counts == tally(0) and counts != tally(1)
    assert 0.03 < counts[f"status_{CODE['OS_LIMIT']}"] / 4000 < 0.07
    assert 0.02 < counts["truncate"] / 4000 < 0.045
    assert set(PROFILES) == {"fast", "realistic", "flaky", "hostile"}
    assert FaultBook("fast").plan(RequestInfo.from_query(GREEKS, {})).latency_s == 0
    assert 0.02 < FaultBook("realistic").plan(RequestInfo.from_query(GREEKS, {})).latency_s < 2


def test_a_client_gets_everything_through_the_hostile_profile():
    with (
        SimulatorServer(port=0, profile="hostile", chain="tiny", seed=4, today=TODAY) as hostile,
        ThetaClient(
            base_url=hostile.base_url, concurrency=4, max_attempts=10, backoff_max_s=0.02
        ) as client,
    ):
        jobs = [
            (dataset, root, SESSION + dt.timedelta(days=d))
            for d in (0, 1, 2, 3)
            for dataset, root in (("eod", "SPXW"), ("open_interest", "SPX"))
        ]
        with ThreadPoolExecutor(4) as pool:
            tables = list(
                pool.map(lambda j: client.fetch_table(j[0], root=j[1], session_date=j[2]), jobs)
            )
        faults = hostile.stats()["faults"]
    assert all(t.num_rows > 0 for t in tables)
    assert sum(faults.values()) >= 1 and sum(client.stats.retries_by_cause.values()) >= 1


# --------------------------------------------------------------------------------------------
# v2 paging
# --------------------------------------------------------------------------------------------
def test_v2_answers_are_paged_and_the_adapter_follows_the_pages(sim):
    with SimulatorServer(
        port=0, chain="tiny", api_version="v2", today=TODAY, v2_page_rows=3000
    ) as v2:
        first = requests.get(
            f"{v2.base_url}/v2{ENDPOINTS['greeks'].v2_path}",
            params={
                "root": "SPXW",
                "exp": "20241108",
                "start_date": "20241104",
                "end_date": "20241104",
                "ivl": "60000",
            },
            timeout=30,
        ).json()
        assert first["header"]["next_page"].startswith(v2.base_url)
        with ThetaClient(base_url=v2.base_url, api_version="v2") as client:
            paged = client.fetch_table(
                "greeks", root="SPXW", session_date=SESSION, expiration=dt.date(2024, 11, 8)
            )
            assert client.stats.requests == 3
    with ThetaClient(base_url=sim.base_url) as client:
        whole = client.fetch_table(
            "greeks", root="SPXW", session_date=SESSION, expiration=dt.date(2024, 11, 8)
        )
    keys = [(k, "ascending") for k in ("strike", "right", "timestamp")]
    assert paged.sort_by(keys).equals(whole.sort_by(keys))


# --------------------------------------------------------------------------------------------
# Control from another process
# --------------------------------------------------------------------------------------------
def test_control_api_of_a_simulator_in_another_process():
    with SimulatorProcess(chain="tiny", seed=0, today=TODAY.isoformat()) as child:
        control = child.control
        assert control.info()["chain"] == "tiny"
        rule_id = control.add_fault(FaultRule(kind="status", status=474, path="greeks", times=1))
        assert [f["id"] for f in control.faults()] == [rule_id]
        assert greeks(child).status_code == CODE["DISCONNECTED"]
        assert greeks(child).status_code == 200
        control.add_fault({"kind": "status", "status": 571})
        assert control.clear_faults() == 1
        control.set_connected(False)
        health = requests.get(child.base_url + HEALTH_PATHS["v3"], timeout=5)
        assert health.text == HEALTH_DISCONNECTED_TEXT
        control.set_connected(True)
        with ThetaClient(base_url=child.base_url) as client:
            table = client.fetch_table(
                "greeks", root="SPXW", session_date=SESSION, expiration=dt.date(2024, 11, 8)
            )
        assert table.num_rows == 18 * 391
        stats = control.stats()
        assert stats["by_status"][200] >= 2 and stats["by_status"][CODE["DISCONNECTED"]] == 1
        assert stats["bytes_sent"] > 1_000_000 and stats["faults"] == {"status_474": 1}
        refused = requests.post(child.base_url + "/_sim/faults", json={"kind": "nope"}, timeout=5)
        assert refused.status_code == 400 and "kind 'nope' is unknown" in refused.json()["error"]
        with pytest.raises(ValueError, match="times must be >= 1"):
            SimulatorControl(child.base_url).add_fault({"kind": "latency", "times": 0})
        process = child.process
    assert process.returncode == 0  # SIGTERM stops it cleanly
