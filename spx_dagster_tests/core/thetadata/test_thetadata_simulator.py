"""The client against the built-in simulator over real HTTP: each fault handled as specified."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pyarrow.parquet as pq
import pytest

from spx_dagster.core.datasets import SCHEMAS
from spx_dagster.core.storage.stage_tables import read_stage_table
from spx_dagster.core.thetadata import errors
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.core.thetadata.health import HealthState
from spx_dagster.core.thetadata.vendor import intervals_per_session

simulator = pytest.importorskip("spx_dagster.simulator")
SimulatorServer = getattr(simulator, "SimulatorServer", None)
FaultRule = getattr(simulator, "FaultRule", None)
if SimulatorServer is None:
    pytest.skip(
        "spx_dagster.simulator does not export SimulatorServer yet", allow_module_level=True
    )

SESSION = dt.date(2024, 11, 4)
GREEKS_PATH = "greeks/first_order"


def sim_stat(sim, name: str):
    stats = sim.stats() if callable(sim.stats) else sim.stats
    return stats[name] if isinstance(stats, dict) else getattr(stats, name)


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(port=0, profile="fast", chain="tiny", seed=0, api_version="v3") as server:
        yield server


@pytest.fixture
def fresh(sim):
    sim.clear_faults()
    sim.set_connected(True)
    yield sim
    sim.clear_faults()
    sim.set_connected(True)


def make_client(sim, **kwargs) -> ThetaClient:
    options = dict(
        concurrency=4,
        connect_timeout_s=1.0,
        timeout_s=10.0,
        max_attempts=4,
        backoff_max_s=0.02,
        reconnect_timeout_s=5.0,
    )
    options.update(kwargs)
    return ThetaClient(base_url=sim.base_url, **options)


@pytest.fixture(scope="module")
def chain(sim):
    """(root, expiration, contracts) of the nearest SPXW expiration listed on SESSION."""
    with make_client(sim) as client:
        contracts = client.list_contracts(SESSION, ["SPX", "SPXW"])
    rows = contracts.to_pylist()
    spxw = sorted({r["expiration"] for r in rows if r["root"] == "SPXW"})
    assert spxw, "the tiny chain lists SPXW expirations"
    expiration = spxw[0]
    count = sum(1 for r in rows if r["root"] == "SPXW" and r["expiration"] == expiration)
    return "SPXW", expiration, count


def fetch_greeks(client: ThetaClient, chain, **kwargs):
    root, expiration, _ = chain
    return client.fetch_table(
        "greeks", root=root, session_date=SESSION, expiration=expiration, **kwargs
    )


# --------------------------------------------------------------------------------------------
# Plain answers
# --------------------------------------------------------------------------------------------
def test_lists_and_a_full_greeks_answer(fresh, chain):
    root, expiration, contracts = chain
    with make_client(fresh) as client:
        expirations = client.list_expirations(root)
        assert expiration in expirations and all(isinstance(e, dt.date) for e in expirations)
        strikes = client.list_strikes(root, expiration)
        assert strikes and all(isinstance(s, float) for s in strikes)
        table = fetch_greeks(client, chain)
    assert table.schema == SCHEMAS["greeks"]
    assert table.num_rows == contracts * intervals_per_session("1m")
    assert set(table.column("root").to_pylist()) == {root}
    assert set(table.column("expiration").to_pylist()) == {expiration}
    assert set(table.column("right").to_pylist()) == {"C", "P"}
    assert set(table.column("strike").to_pylist()) <= set(strikes)


@pytest.mark.parametrize("dataset", ["eod", "open_interest", "greeks_eod"])
def test_wildcard_datasets(fresh, dataset):
    with make_client(fresh) as client:
        table = client.fetch_table(dataset, root="SPXW", session_date=SESSION)
    assert table.schema == SCHEMAS[dataset] and table.num_rows > 0


def test_quote_per_expiration(fresh, chain):
    root, expiration, contracts = chain
    with make_client(fresh) as client:
        table = client.fetch_table(
            "quote", root=root, session_date=SESSION, expiration=expiration, interval="5m"
        )
    assert table.num_rows == contracts * intervals_per_session("5m")


# --------------------------------------------------------------------------------------------
# Retried faults
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "cause", "times"),
    [
        (dict(kind="status", status=429), "rate_limited", 2),
        (dict(kind="status", status=571), "server_starting", 2),
        (dict(kind="status", status=500), "server_error", 2),
        (dict(kind="status", status=470), "general", 1),
        (dict(kind="drop_mid_body"), "truncated", 1),
        (dict(kind="truncate"), "truncated", 1),
    ],
    ids=lambda v: str(v.get("status") or v.get("kind")) if isinstance(v, dict) else None,
)
def test_retried_faults_succeed_and_are_counted(fresh, chain, rule, cause, times, tmp_path):
    fresh.add_fault(FaultRule(path=GREEKS_PATH, times=times, **rule))
    root, expiration, contracts = chain
    with make_client(fresh) as client:
        result = client.fetch_to_parquet(
            "greeks",
            root=root,
            session_date=SESSION,
            expiration=expiration,
            path=tmp_path / "g.parquet",
        )
        assert result.retries == {cause: times}
        assert client.stats.retries_by_cause == {cause: times}
        assert result.requests == times + 1
    assert result.rows == contracts * intervals_per_session("1m")
    assert pq.read_table(tmp_path / "g.parquet").num_rows == result.rows


def test_474_waits_for_the_terminal_to_reconnect(fresh, chain):
    fresh.set_connected(False)
    reconnect = threading.Timer(0.5, fresh.set_connected, args=(True,))
    reconnect.start()
    try:
        with make_client(fresh) as client:
            started = time.monotonic()
            table = fetch_greeks(client, chain)
            assert time.monotonic() - started >= 0.4
            assert client.stats.retries_by_cause.get("disconnected", 0) >= 1
    finally:
        reconnect.cancel()
    assert table.num_rows == chain[2] * intervals_per_session("1m")


@pytest.mark.parametrize("kind", ["drop_mid_body", "truncate"])
def test_a_cut_answer_is_never_complete(fresh, chain, kind, tmp_path):
    fresh.add_fault(FaultRule(kind=kind, path=GREEKS_PATH, times=None))
    target = tmp_path / "never.parquet"
    with make_client(fresh, max_attempts=3) as client:
        with pytest.raises(errors.TruncatedResponse):
            client.fetch_to_parquet(
                "greeks",
                root=chain[0],
                session_date=SESSION,
                expiration=chain[1],
                path=target,
            )
        assert client.stats.requests == 3
        assert client.stats.retries_by_cause == {"truncated": 2}
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Faults that fail at once, and answers that are not failures
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error_class", "advice"),
    [
        (471, errors.PermissionDenied, "upgrade the ThetaData subscription"),
        (473, errors.InvalidParams, "update ThetaTerminal"),
        (476, errors.WrongIp, "127.0.0.1 or localhost"),
        (478, errors.SessionConflict, "stop the other ThetaTerminal"),
        (404, errors.NotImplementedByTerminal, "thetadata.api_version"),
        (572, errors.TerminalBug, "report the exact request"),
    ],
)
def test_permanent_faults_fail_fast_with_advice(fresh, chain, status, error_class, advice):
    fresh.add_fault(FaultRule(kind="status", status=status, path=GREEKS_PATH, times=None))
    with make_client(fresh, backoff_max_s=5.0) as client:
        started = time.monotonic()
        with pytest.raises(error_class, match=advice) as info:
            fetch_greeks(client, chain)
        assert time.monotonic() - started < 2.0
        assert client.stats.requests == 1
    assert info.value.status == status and not info.value.retryable
    assert GREEKS_PATH in info.value.url


def test_wrong_api_version_410(fresh):
    with make_client(fresh, api_version="v2") as client:
        assert client.probe().state is HealthState.WRONG_API_VERSION
        with pytest.raises(errors.WrongApiVersion, match="api_version v3") as info:
            client.list_expirations("SPXW")
        assert info.value.status == 410 and client.stats.requests == 1


def test_472_is_an_empty_answer(fresh, chain, tmp_path):
    fresh.add_fault(FaultRule(kind="status", status=472, path=GREEKS_PATH, times=1))
    with make_client(fresh) as client:
        result = client.fetch_to_parquet(
            "greeks",
            root=chain[0],
            session_date=SESSION,
            expiration=chain[1],
            path=tmp_path / "none.parquet",
        )
        assert result.no_data and result.rows == 0 and result.retries == {}
        assert client.stats.no_data == 1
    assert not (tmp_path / "none.parquet").exists()


def test_570_splits_and_concatenates(fresh, chain):
    fresh.add_fault(FaultRule(kind="status", status=570, path=GREEKS_PATH, times=1))
    with make_client(fresh) as client:
        table = fetch_greeks(client, chain)
        assert client.stats.splits == 1
    assert table.num_rows == chain[2] * intervals_per_session("1m")
    rights = table.column("right").to_pylist()
    assert rights == sorted(rights)  # calls first, then puts: two concatenated parts


def test_a_split_answer_staged_as_arrow_holds_the_rows_of_the_parquet_one(fresh, chain, tmp_path):
    """The session's staged format (Arrow IPC) merges a split request's parts like parquet does,
    and a cut attempt before it leaves nothing behind."""
    kwargs = dict(root=chain[0], session_date=SESSION, expiration=chain[1])
    with make_client(fresh) as client:
        fresh.add_fault(FaultRule(kind="drop_mid_body", path=GREEKS_PATH, times=1))
        again = client.fetch_to_arrow("greeks", path=tmp_path / "g.arrow", **kwargs)
        assert again.retries == {"truncated": 1}
        fresh.add_fault(FaultRule(kind="status", status=570, path=GREEKS_PATH, times=1))
        staged = client.fetch_to_arrow("greeks", path=tmp_path / "g.arrow", **kwargs)
        assert client.stats.splits == 1 and staged.retries == {"large_request": 1}
        parquet = client.fetch_to_parquet("greeks", path=tmp_path / "g.parquet", **kwargs)
    table = read_stage_table(tmp_path / "g.arrow")
    assert staged.path == tmp_path / "g.arrow" and table.schema == SCHEMAS["greeks"]
    assert table.num_rows == staged.rows == again.rows == chain[2] * intervals_per_session("1m")
    keys = [(name, "ascending") for name in ("right", "strike", "timestamp")]
    assert table.sort_by(keys).equals(pq.read_table(parquet.path).sort_by(keys))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.arrow", "g.parquet"]


def test_extra_column_is_dropped_with_a_warning(fresh, chain, caplog):
    fresh.add_fault(FaultRule(kind="extra_column", path=GREEKS_PATH, times=1))
    with make_client(fresh) as client, caplog.at_level(logging.WARNING, "spx_dagster.thetadata"):
        table = fetch_greeks(client, chain)
        assert client.stats.extra_columns >= 1
    assert table.schema == SCHEMAS["greeks"]
    assert table.num_rows == chain[2] * intervals_per_session("1m")
    assert any("schema drift" in r.getMessage() for r in caplog.records)


def test_malformed_row_is_skipped_counted_and_handed_over(fresh, chain):
    fresh.add_fault(FaultRule(kind="malformed_row", path=GREEKS_PATH, times=1))
    seen: list[tuple[str, str]] = []
    with make_client(fresh) as client:
        table = fetch_greeks(client, chain, on_malformed=lambda line, why: seen.append((line, why)))
        assert client.stats.malformed_rows == len(seen) >= 1
    assert table.num_rows == chain[2] * intervals_per_session("1m") - len(seen)
    line, reason = seen[0]
    assert line.startswith(chain[0] + ",") and reason


def test_concurrency_limit_holds_across_16_threads(sim, chain):
    with SimulatorServer(port=0, profile="fast", chain="tiny", seed=0) as own:
        own.add_fault(FaultRule(kind="latency", seconds=0.05, path=GREEKS_PATH))
        client = make_client(own, concurrency=2)
        failures: list[BaseException] = []

        def work() -> None:
            try:
                fetch_greeks(client, chain)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        assert client.stats.requests == 16
        assert 1 <= sim_stat(own, "max_concurrent_seen") <= 2


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------
def test_health_states(fresh):
    with make_client(fresh) as client:
        ready = client.probe()
        assert ready.state is HealthState.READY and ready.latency_ms is not None
        fresh.set_connected(False)
        down = client.probe()
        assert down.state is HealthState.DISCONNECTED and fresh.base_url in down.detail


def test_v3_client_against_a_v2_terminal():
    with SimulatorServer(port=0, profile="fast", chain="tiny", seed=0, api_version="v2") as v2:
        with make_client(v2) as client:
            health = client.probe()
            assert health.state is HealthState.WRONG_API_VERSION
            assert "thetadata.api_version v2" in health.detail
        with make_client(v2, api_version="v2") as client:
            assert client.probe().state is HealthState.READY


def test_v2_adapter_answers_like_v3(sim, chain):
    root, expiration, _ = chain
    with (
        SimulatorServer(port=0, profile="fast", chain="tiny", seed=0, api_version="v2") as v2,
        make_client(v2, api_version="v2") as client,
    ):
        v2_table = fetch_greeks(client, chain)
        v2_expirations = client.list_expirations(root)
        v2_strikes = client.list_strikes(root, expiration)
    with make_client(sim) as client:
        v3_table = fetch_greeks(client, chain)
        assert client.list_expirations(root) == v2_expirations
        assert client.list_strikes(root, expiration) == v2_strikes
    keys = ["strike", "right", "timestamp"]
    assert v2_table.sort_by([(k, "ascending") for k in keys]).equals(
        v3_table.sort_by([(k, "ascending") for k in keys])
    )
