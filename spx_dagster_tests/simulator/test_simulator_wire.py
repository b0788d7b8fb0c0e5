"""The simulator's answers look like the public ThetaTerminal samples, byte for byte in format.

Each sample under fixtures/thetadata_samples/ is compared with the simulator's answer to the
equivalent request over real HTTP: same header (column order), CRLF everywhere, the same number
formats per column, and the same schema when both are read by the same ``pyarrow.csv`` call.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
import requests

from spx_dagster.core.thetadata.vendor import (
    CSV_LINE_END,
    ENDPOINTS,
    HEALTH_PATHS,
    HEALTH_READY_TEXT,
    LIST_CONTRACTS_PATH,
    LIST_EXPIRATIONS_PATH,
    LIST_STRIKES_PATH,
    STATUS_CODES,
    V2_LIST_EXPIRATIONS_PATH,
)
from spx_dagster.core.thetadata.wire import SPECS, parse_json, parse_ndjson
from spx_dagster.simulator import SimulatorServer

SAMPLES = Path(__file__).parents[1] / "fixtures" / "thetadata_samples"
SESSION = "20241104"
TODAY = dt.date(2025, 1, 31)
CODE = {s.name: s.code for s in STATUS_CODES.values()}

# sample file -> (path below /v3, query) of the equivalent simulator request
EQUIVALENT = {
    "v3_option_history_eod.csv": (
        ENDPOINTS["eod"].path,
        {"symbol": "SPXW", "expiration": "*", "start_date": SESSION, "end_date": SESSION},
    ),
    "v3_option_history_greeks_eod.csv": (
        ENDPOINTS["greeks_eod"].path,
        {"symbol": "SPXW", "expiration": "*", "start_date": SESSION, "end_date": SESSION},
    ),
    "v3_option_history_greeks_first_order.csv": (
        ENDPOINTS["greeks"].path,
        {"symbol": "SPXW", "expiration": "20241108", "date": SESSION, "interval": "5m"},
    ),
    "v3_option_history_open_interest.csv": (
        ENDPOINTS["open_interest"].path,
        {"symbol": "SPXW", "expiration": "*", "date": SESSION},
    ),
    "v3_option_history_quote.csv": (
        ENDPOINTS["quote"].path,
        {"symbol": "SPXW", "expiration": "20241108", "date": SESSION, "interval": "1m"},
    ),
    "v3_option_list_contracts.csv": (LIST_CONTRACTS_PATH, {"symbol": "SPX,SPXW", "date": SESSION}),
    "v3_option_list_expirations.csv": (LIST_EXPIRATIONS_PATH, {"symbol": "SPXW"}),
}


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(port=0, chain="tiny", seed=0, today=TODAY) as server:
        yield server


def get(sim, path: str, params: dict, **kwargs) -> requests.Response:
    return requests.get(f"{sim.base_url}/v3{path}", params=params, timeout=30, **kwargs)


def shape(value: str) -> str:
    """A value's format class: 'n.2' (2 decimals), 'int', 'ts', 'date', or the text itself."""
    if re.fullmatch(r"-?\d+\.\d+", value):
        return f"n.{len(value.split('.')[1])}"
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?", value):
        return "ts"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return "date"
    return "text"


def column_shapes(body: bytes) -> dict[str, set[str]]:
    lines = body.decode().split(CSV_LINE_END)
    header = lines[0].split(",")
    shapes: dict[str, set[str]] = {name: set() for name in header}
    for line in lines[1:]:
        if line:
            for name, value in zip(header, line.split(","), strict=True):
                shapes[name].add(shape(value))
    return shapes


@pytest.mark.parametrize("sample", sorted(EQUIVALENT))
def test_answer_matches_the_public_sample(sim, sample):
    expected = (SAMPLES / sample).read_bytes()
    path, params = EQUIVALENT[sample]
    response = get(sim, path, {**params, "format": "csv"})
    assert response.status_code == 200, response.text
    ours = response.content
    # Same header line, CRLF after every line (no bare LF), at least one row.
    assert ours.split(b"\r\n", 1)[0] == expected.split(b"\r\n", 1)[0]
    assert ours.endswith(b"\r\n") and ours.count(b"\n") == ours.count(b"\r\n") > 1
    # Same number formats per column (decimals, ISO timestamps, dates, rights).
    sample_shapes, our_shapes = column_shapes(expected), column_shapes(ours)
    for name, shapes in sample_shapes.items():
        assert our_shapes[name] <= shapes | ({"ts"} if "ts" in shapes else set()), name
    if "right" in our_shapes:
        rights = {line.split(b",")[3] for line in ours.split(b"\r\n")[1:] if line}
        assert rights == {b"CALL", b"PUT"}
    # The same pyarrow read of both gives the same schema.
    assert pacsv.read_csv(io.BytesIO(ours)).schema == pacsv.read_csv(SAMPLES / sample).schema


def test_trimmed_millisecond_fractions_like_the_terminal(sim):
    path, params = EQUIVALENT["v3_option_history_eod.csv"]
    body = get(sim, path, params).text
    created = [line.split(",")[4] for line in body.split("\r\n")[1:] if line]
    fractions = {len(c.split(".")[1]) if "." in c else 0 for c in created}
    assert fractions <= {0, 1, 2, 3} and 3 in fractions
    assert not any(c.endswith("0") and "." in c for c in created)  # .710 is written .71


@pytest.mark.parametrize("dataset", ["greeks", "quote", "eod", "open_interest", "greeks_eod"])
def test_ndjson_and_json_carry_the_same_rows_as_csv(sim, dataset):
    endpoint = ENDPOINTS[dataset]
    params = {"symbol": "SPXW", "expiration": "20241108"}
    if endpoint.date_style == "range":
        params.update(start_date=SESSION, end_date=SESSION)
    else:
        params["date"] = SESSION
    if endpoint.intraday:
        params["interval"] = "15m"
    spec = SPECS[dataset]
    csv = get(sim, endpoint.path, {**params, "format": "csv"}).content
    table = pacsv.read_csv(io.BytesIO(csv)).num_rows
    ndjson, bad1 = parse_ndjson(
        get(sim, endpoint.path, {**params, "format": "ndjson"}).content, spec
    )
    js, bad2 = parse_json(get(sim, endpoint.path, {**params, "format": "json"}).content, spec)
    assert not bad1 and not bad2
    assert ndjson.num_rows == js.num_rows == table > 0
    assert ndjson.equals(js)


def test_list_strikes_answer(sim):
    response = get(sim, LIST_STRIKES_PATH, {"symbol": "SPXW", "expiration": "20241108"})
    lines = response.content.split(b"\r\n")
    assert lines[0] == b"symbol,strike" and lines[-1] == b""
    assert all(re.fullmatch(rb"SPXW,\d+\.000", line) for line in lines[1:-1])


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        (
            ENDPOINTS["greeks"].path,
            {"symbol": "SPXW", "expiration": "20241108", "date": "20241102"},
            "NO_DATA",
        ),
        (
            ENDPOINTS["greeks"].path,
            {"symbol": "SPXW", "expiration": "20241108", "date": "20241128"},
            "NO_DATA",
        ),
        (
            ENDPOINTS["greeks"].path,
            {"symbol": "SPXW", "expiration": "20241109", "date": SESSION},
            "NO_DATA",
        ),
        (
            ENDPOINTS["greeks"].path,
            {"symbol": "AAPL", "expiration": "20241108", "date": SESSION},
            "NO_DATA",
        ),
        (
            ENDPOINTS["greeks"].path,
            {"symbol": "SPXW", "expiration": "*", "date": SESSION},
            "INVALID_PARAMS",
        ),
        (ENDPOINTS["greeks"].path, {"symbol": "SPXW", "expiration": "20241108"}, "INVALID_PARAMS"),
        (
            ENDPOINTS["greeks"].path,
            {"symbol": "SPXW", "expiration": "20241108", "date": SESSION, "interval": "7m"},
            "INVALID_PARAMS",
        ),
        ("/option/history/nonsense", {"symbol": "SPXW"}, "NO_IMPL"),
    ],
    ids=[
        "weekend",
        "thanksgiving",
        "unlisted",
        "unknown-root",
        "wildcard",
        "no-date",
        "interval",
        "path",
    ],
)
def test_error_statuses_and_bodies(sim, path, params, status):
    response = get(sim, path, params)
    assert response.status_code == CODE[status]
    assert response.text.startswith(status + ":") and len(response.text) > len(status) + 5


def test_dates_before_data_and_after_today_are_no_data(sim):
    for day in ("20120531", (TODAY + dt.timedelta(days=5)).strftime("%Y%m%d")):
        response = get(sim, LIST_CONTRACTS_PATH, {"symbol": "SPXW", "date": day})
        assert response.status_code == CODE["NO_DATA"], day


def test_wrong_version_paths_and_health(sim):
    health = requests.get(sim.base_url + HEALTH_PATHS["v3"], timeout=5)
    assert health.status_code == 200 and health.text == HEALTH_READY_TEXT
    gone = requests.get(sim.base_url + "/v2" + V2_LIST_EXPIRATIONS_PATH, params={"root": "SPXW"})
    assert gone.status_code == CODE["GONE"]
    assert requests.get(sim.base_url + "/", timeout=5).status_code == CODE["NO_IMPL"]


def test_v2_terminal_envelope_matches_the_docs_example():
    sample = json.loads((SAMPLES / "v2_list_expirations_docs_example.json").read_text())
    with SimulatorServer(port=0, chain="tiny", api_version="v2", today=TODAY) as v2:
        response = requests.get(
            f"{v2.base_url}/v2{V2_LIST_EXPIRATIONS_PATH}", params={"root": "SPXW"}, timeout=10
        )
        assert requests.get(v2.base_url + HEALTH_PATHS["v3"], timeout=5).status_code == 404
    envelope = response.json()
    assert set(sample["header"]) <= set(envelope["header"])
    assert envelope["header"]["format"] == sample["header"]["format"]
    assert all(isinstance(v, int) and len(str(v)) == 8 for v in envelope["response"])
    assert envelope["header"]["next_page"] == "null"
