"""The client over real HTTP against a scripted server, for wire faults the simulator cannot make
(Content-Length lies, chunked bodies cut short, missing final CRLF, paging, exact call counts)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spx_dagster.core.datasets import SCHEMAS
from spx_dagster.core.thetadata import errors
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.core.thetadata.health import HealthState
from spx_dagster.core.thetadata.vendor import (
    ENDPOINTS,
    GREEKS_FIRST_ORDER_COLUMNS,
    HEALTH_PATH_V2,
    HEALTH_PATH_V3,
    LIST_STRIKES_PATH,
    V2_LIST_EXPIRATIONS_PATH,
)
from spx_dagster_tests.core.thetadata.scripted_terminal import Reply, ScriptedTerminal

SESSION = dt.date(2024, 11, 4)
EXPIRATION = dt.date(2024, 11, 8)
GREEKS = "/v3" + ENDPOINTS["greeks"].path
EOD = "/v3" + ENDPOINTS["eod"].path


def greeks_csv(strikes=(5900.0,), rights=("CALL", "PUT"), minutes=5, *, header=True) -> bytes:
    lines = [",".join(GREEKS_FIRST_ORDER_COLUMNS)] if header else []
    for strike in strikes:
        for right in rights:
            for m in range(minutes):
                hour, minute = divmod(9 * 60 + 30 + m, 60)
                ts = f"2024-11-04T{hour:02d}:{minute:02d}:00"
                lines.append(
                    f"SPXW,2024-11-08,{strike:.3f},{right},{ts},1.10,1.20,0.5,-0.1,"
                    f"0.2,0.01,-0.01,30.5,0.25,0.001,{ts}.5,5712.25"
                )
    return ("\r\n".join(lines) + "\r\n").encode()


def client_for(terminal: ScriptedTerminal, **kwargs) -> ThetaClient:
    options = dict(
        concurrency=4,
        connect_timeout_s=1.0,
        timeout_s=5.0,
        max_attempts=4,
        backoff_max_s=0.01,
        reconnect_timeout_s=2.0,
    )
    options.update(kwargs)
    return ThetaClient(base_url=terminal.base_url, **options)


def fetch_greeks(client: ThetaClient, **kwargs):
    return client.fetch_table(
        "greeks", root="SPXW", session_date=SESSION, expiration=EXPIRATION, **kwargs
    )


@pytest.fixture
def terminal():
    with ScriptedTerminal() as t:
        yield t


def test_request_parameters_and_typed_answer(terminal):
    terminal.script(GREEKS, Reply(body=greeks_csv()))
    with client_for(terminal, end_time="16:15:00") as client:
        table = fetch_greeks(client)
    assert table.schema == SCHEMAS["greeks"] and table.num_rows == 10
    path, query = terminal.requests[0]
    assert path == GREEKS
    assert query == {
        "symbol": "SPXW",
        "expiration": "20241108",
        "date": "20241104",
        "interval": "1m",
        "end_time": "16:15:00",
        "format": "csv",
    }


@pytest.mark.parametrize(
    ("session", "configured", "sent"),
    [
        (SESSION, None, None),  # a regular session: the terminal's 16:00 default
        (dt.date(2024, 11, 29), None, "13:00:00"),  # day after Thanksgiving, 13:00 close
        (dt.date(2024, 11, 29), "16:15:00", "13:15:00"),  # SPX's quarter hour moves with it
        (dt.date(2024, 7, 3), None, "13:00:00"),
    ],
)
def test_an_early_close_asks_for_the_half_days_window(terminal, session, configured, sent):
    terminal.script(GREEKS, Reply(body=greeks_csv()))
    options = {"end_time": configured} if configured else {}
    with client_for(terminal, **options) as client:
        client.fetch_table(
            "greeks", root="SPXW", session_date=session, expiration=EXPIRATION, interval="1m"
        )
    assert terminal.requests[0][1].get("end_time") == sent


def test_eod_uses_a_date_range_and_wildcard(terminal):
    eod = Path(__file__).parents[2] / "fixtures/thetadata_samples/v3_option_history_eod.csv"
    terminal.script(EOD, Reply(body=eod.read_bytes(), chunked=True))
    with client_for(terminal) as client:
        table = client.fetch_table("eod", root="SPX", session_date=SESSION)
    assert table.num_rows == 1
    query = terminal.requests[0][1]
    assert query["expiration"] == "*" and query["start_date"] == query["end_date"] == "20241104"
    assert "interval" not in query


def test_content_length_lie_is_retried_then_succeeds(terminal):
    body = greeks_csv()
    terminal.script(
        GREEKS, Reply(body=body, length=len(body) + 50, send_bytes=len(body)), Reply(body=body)
    )
    with client_for(terminal) as client:
        result = client.fetch_to(
            "greeks",
            root="SPXW",
            session_date=SESSION,
            expiration=EXPIRATION,
            sink=_CountingSink(),
        )
        assert result.rows == 10 and result.retries == {"truncated": 1}
        assert result.requests == 2
        assert client.stats.retries_by_cause == {"truncated": 1}


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda b: Reply(body=b, send_bytes=len(b) // 2, chunked=True), id="chunked"),
        pytest.param(lambda b: Reply(body=b, length=len(b) + 9, send_bytes=len(b)), id="length"),
        pytest.param(lambda b: Reply(body=b[:-2]), id="no-final-crlf"),
        pytest.param(lambda b: Reply(body=b[:-7]), id="cut-in-last-number"),
        pytest.param(lambda b: Reply(body=b[: len(b) // 2], length=None), id="close-delimited"),
    ],
)
def test_truncation_is_never_a_complete_answer(terminal, reply):
    terminal.script(GREEKS, reply(greeks_csv(minutes=50)))
    with (
        client_for(terminal, max_attempts=3) as client,
        pytest.raises(errors.TruncatedResponse) as info,
    ):
        fetch_greeks(client)
    assert info.value.retryable and info.value.category == "truncated"
    assert len(terminal.requests) == 3


def test_partial_delivery_is_discarded_before_the_retry(terminal, tmp_path):
    body = greeks_csv(strikes=[5000.0 + 5 * i for i in range(40)], minutes=60)
    terminal.script(
        GREEKS,
        Reply(body=body, length=len(body), send_bytes=int(len(body) * 0.7)),
        Reply(body=body),
    )
    target = tmp_path / "greeks" / "SPXW_2024-11-08.parquet"
    with client_for(terminal) as client:
        result = client.fetch_to_parquet(
            "greeks", root="SPXW", session_date=SESSION, expiration=EXPIRATION, path=target
        )
    table = pq.read_table(target)
    assert table.num_rows == result.rows == 40 * 2 * 60
    keys = table.select(["strike", "right", "timestamp"]).to_pylist()
    assert len({tuple(k.values()) for k in keys}) == len(keys)  # nothing twice
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_failed_fetch_leaves_existing_file_and_no_temporaries(terminal, tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous answer")
    terminal.script(GREEKS, Reply(status=473, body=b"bad expiration"))
    with client_for(terminal) as client, pytest.raises(errors.InvalidParams, match="473"):
        client.fetch_to_parquet(
            "greeks", root="SPXW", session_date=SESSION, expiration=EXPIRATION, path=target
        )
    assert target.read_bytes() == b"previous answer"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert len(terminal.requests) == 1  # not retried


def test_no_data_is_an_answer_and_removes_a_stale_file(terminal, tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"stale")
    terminal.script(GREEKS, Reply(status=472, body=b"No data for the specified timeframe"))
    with client_for(terminal) as client:
        result = client.fetch_to_parquet(
            "greeks", root="SPXW", session_date=SESSION, expiration=EXPIRATION, path=target
        )
        assert result.no_data and result.rows == 0 and result.path is None
        assert client.stats.no_data == 1
        assert fetch_greeks(client).num_rows == 0
    assert not target.exists()


def test_header_only_answer_writes_an_empty_typed_file(terminal, tmp_path):
    terminal.script(GREEKS, Reply(body=greeks_csv(strikes=())))
    target = tmp_path / "empty.parquet"
    with client_for(terminal) as client:
        result = client.fetch_to_parquet(
            "greeks", root="SPXW", session_date=SESSION, expiration=EXPIRATION, path=target
        )
    assert not result.no_data and result.rows == 0
    assert pq.read_schema(target).equals(SCHEMAS["greeks"])


def test_next_page_header_is_followed(terminal):
    page2 = "/v3/page/2"
    terminal.script(
        GREEKS,
        Reply(body=greeks_csv(strikes=[1.0]), headers={"Next-Page": terminal.base_url + page2}),
    )
    terminal.script(page2, Reply(body=greeks_csv(strikes=[2.0]), headers={"Next-Page": "null"}))
    with client_for(terminal) as client:
        table = fetch_greeks(client)
    assert sorted(set(table.column("strike").to_pylist())) == [1.0, 2.0]


def test_retry_after_is_honoured(terminal):
    terminal.script(
        GREEKS, Reply(status=429, headers={"Retry-After": "0.4"}), Reply(body=greeks_csv())
    )
    with client_for(terminal, backoff_max_s=5.0) as client:
        started = time.monotonic()
        fetch_greeks(client)
        assert time.monotonic() - started >= 0.4
        assert client.stats.retries_by_cause == {"rate_limited": 1}


def test_474_waits_for_connected_before_retrying(terminal):
    terminal.script(HEALTH_PATH_V3, Reply(body=b"DISCONNECTED"), Reply(body=b"CONNECTED"))
    terminal.script(GREEKS, Reply(status=474), Reply(body=greeks_csv()))
    with client_for(terminal) as client:
        assert fetch_greeks(client).num_rows == 10
    paths = [p for p, _ in terminal.requests]
    assert paths == [GREEKS, HEALTH_PATH_V3, HEALTH_PATH_V3, GREEKS]


def test_read_timeout_is_retried(terminal):
    terminal.script(GREEKS, Reply(body=greeks_csv(), delay_s=1.0), Reply(body=greeks_csv()))
    with client_for(terminal, timeout_s=0.3) as client:
        assert fetch_greeks(client).num_rows == 10
        assert client.stats.retries_by_cause == {"timeout": 1}


def test_large_request_splits_by_right_then_strike(terminal):
    terminal.script(
        GREEKS,
        Reply(status=570),  # whole expiration
        Reply(body=greeks_csv(strikes=[10.0, 20.0], rights=["CALL"])),  # right=call
        Reply(status=570),  # right=put still too large
        Reply(body=greeks_csv(strikes=[10.0], rights=["PUT"])),  # put, strike 10
        Reply(body=greeks_csv(strikes=[20.0], rights=["PUT"])),  # put, strike 20
    )
    terminal.script(
        "/v3" + LIST_STRIKES_PATH, Reply(body=b"symbol,strike\r\nSPXW,10.000\r\nSPXW,20.000\r\n")
    )
    with client_for(terminal) as client:
        result = client.fetch_to(
            "greeks",
            root="SPXW",
            session_date=SESSION,
            expiration=EXPIRATION,
            sink=(sink := _CountingSink()),
        )
    assert result.rows == 20 == sink.rows and result.retries == {"large_request": 2}
    queries = [q for p, q in terminal.requests if p == GREEKS]
    assert [q.get("right") for q in queries] == [None, "call", "put", "put", "put"]
    assert [q.get("strike") for q in queries][-2:] == ["10.000", "20.000"]


def test_connection_refused_fails_fast_with_how_to_start_a_terminal():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ThetaClient(
        base_url=f"http://127.0.0.1:{port}",
        connect_timeout_s=1.0,
        max_attempts=6,
        backoff_max_s=0.05,
    )
    started = time.monotonic()
    with pytest.raises(errors.TerminalUnreachable) as info:
        fetch_greeks(client)
    assert time.monotonic() - started < 2.0
    assert f"no ThetaTerminal listening at http://127.0.0.1:{port}" in str(info.value)
    assert f"spx-data simulator --port {port}" in str(info.value)
    assert client.stats.requests == 2  # retried once only
    assert client.probe().state is HealthState.UNREACHABLE


def test_concurrency_is_shared_by_every_client_of_a_terminal(terminal):
    terminal.script(GREEKS, Reply(body=greeks_csv(), delay_s=0.05))
    clients = [client_for(terminal, concurrency=3) for _ in range(2)]
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                fetch_greeks(clients[i % 2])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert len(terminal.requests) == 48
    assert terminal.max_in_flight == 3


def test_wrong_api_version_probe_and_410(terminal):
    terminal.script(HEALTH_PATH_V2, Reply(status=410, body=b"Gone"))
    terminal.script(HEALTH_PATH_V3, Reply(body=b"CONNECTED"))
    terminal.script("/v2" + V2_LIST_EXPIRATIONS_PATH, Reply(status=410))
    with client_for(terminal, api_version="v2") as client:
        health = client.probe()
        assert health.state is HealthState.WRONG_API_VERSION
        assert "thetadata.api_version v3" in health.detail
        with pytest.raises(errors.WrongApiVersion, match="speaks v3"):
            client.list_expirations("SPXW")


def test_v2_pages_and_expired_page_reissue(terminal):
    path = "/v2" + ENDPOINTS["greeks"].v2_path
    fmt = [
        "ms_of_day",
        "bid",
        "ask",
        "delta",
        "theta",
        "vega",
        "rho",
        "epsilon",
        "lambda",
        "implied_vol",
        "iv_error",
        "ms_of_day2",
        "underlying_price",
        "date",
    ]

    def page(strike: int, next_page: str) -> bytes:
        ticks = [
            [
                34_200_000 + 60_000 * m,
                1.1,
                1.2,
                0.5,
                -0.1,
                0.2,
                0.01,
                -0.01,
                30.5,
                0.25,
                -0.0199,
                34_200_000 + 60_000 * m + 710,
                5712.25,
                20241104,
            ]
            for m in range(3)
        ]
        contract = {"root": "SPXW", "expiration": 20241108, "strike": strike, "right": "P"}
        header = {"format": fmt, "next_page": next_page, "error_type": "null"}
        return json.dumps(
            {"header": header, "response": [{"ticks": ticks, "contract": contract}]}
        ).encode()

    page2 = terminal.base_url + "/v2/page2"
    terminal.script(path, Reply(body=page(5_900_000, page2)))
    terminal.script("/v2/page2", Reply(status=477), Reply(body=page(5_905_000, "null")))
    with client_for(terminal, api_version="v2") as client:
        table = client.fetch_table(
            "greeks", root="SPXW", session_date=SESSION, expiration=EXPIRATION
        )
        assert client.stats.retries_by_cause == {"page_expired": 1}
    assert table.schema == SCHEMAS["greeks"]
    assert table.num_rows == 6  # the first attempt's page 1 was discarded
    assert sorted(set(table.column("strike").to_pylist())) == [5900.0, 5905.0]
    first = table.to_pylist()[0]
    assert first["right"] == "P" and first["iv_error"] == -0.0199
    assert first["timestamp"].isoformat() == "2024-11-04T09:30:00-05:00"
    assert first["underlying_timestamp"].isoformat() == "2024-11-04T09:30:00.710000-05:00"
    queries = [q for p, q in terminal.requests if p == path]
    assert queries[0] == {
        "root": "SPXW",
        "exp": "20241108",
        "start_date": "20241104",
        "end_date": "20241104",
        "ivl": "60000",
    }
    assert len(queries) == 2


class _CountingSink:
    def __init__(self):
        self.rows = 0
        self.pending = 0

    def write(self, batch):
        self.pending += batch.num_rows

    def commit(self):
        self.rows += self.pending
        self.pending = 0

    def discard(self):
        self.pending = 0
