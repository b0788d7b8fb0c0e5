"""The parser against every verbatim public sample, and its handling of bad bodies."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from spx_dagster.core.datasets import SCHEMAS
from spx_dagster.core.thetadata.errors import SchemaError, TruncatedResponse
from spx_dagster.core.thetadata.v2 import envelope_columns, parse_envelope, to_v3_text
from spx_dagster.core.thetadata.wire import (
    SPECS,
    BatchConverter,
    BodyStream,
    CsvAnswer,
    parse_json,
    parse_ndjson,
)

SAMPLES = Path(__file__).parents[2] / "fixtures" / "thetadata_samples"
ET = ZoneInfo("America/New_York")
DATASET_OF_SAMPLE = {
    "v3_option_history_eod": "eod",
    "v3_option_history_greeks_eod": "greeks_eod",
    "v3_option_history_greeks_first_order": "greeks",
    "v3_option_history_open_interest": "open_interest",
    "v3_option_history_quote": "quote",
    "v3_option_history_quote_columnar_lumibot_fixture": "quote",
    "v3_option_list_contracts": "list_contracts",
    "v3_option_list_expirations": "list_expirations",
}


def parse_csv_bytes(data: bytes, spec_name: str, *, block_size: int = 1 << 20):
    answer = CsvAnswer(
        BodyStream(io.BytesIO(data), url="fixture", content_length=len(data)),
        SPECS[spec_name],
        block_size=block_size,
    )
    table = pa.Table.from_batches(list(answer), schema=SPECS[spec_name].schema)
    return table, answer


def parse_sample(path: Path) -> pa.Table:
    """Any sample through the parser for its format."""
    spec = SPECS[DATASET_OF_SAMPLE[path.stem]]
    if path.suffix == ".csv":
        table, answer = parse_csv_bytes(path.read_bytes(), spec.name)
        assert answer.malformed == [] and answer.extra_columns == ()
        return table
    if path.suffix == ".ndjson":
        table, malformed = parse_ndjson(path.read_bytes(), spec)
    else:
        table, malformed = parse_json(path.read_bytes(), spec)
    assert malformed == []
    return table


def v3_samples() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.name.startswith("v3_"))


def test_every_sample_is_covered():
    names = {p.name for p in SAMPLES.iterdir()}
    assert names, SAMPLES
    assert {p.name for p in v3_samples()} | {"v2_list_expirations_docs_example.json"} == names


@pytest.mark.parametrize("path", v3_samples(), ids=lambda p: p.name)
def test_sample_parses_to_the_dataset_schema(path: Path):
    table = parse_sample(path)
    spec = SPECS[DATASET_OF_SAMPLE[path.stem]]
    assert table.schema == spec.schema
    assert table.num_rows >= 1
    assert "symbol" not in table.column_names and "date" not in table.column_names
    if "right" in table.column_names:
        assert set(table.column("right").to_pylist()) <= {"C", "P"}


def test_greeks_first_order_csv_exact_values():
    rows = parse_sample(SAMPLES / "v3_option_history_greeks_first_order.csv").to_pylist()
    assert len(rows) == 5
    first, last = rows[0], rows[-1]
    assert first["root"] == "AAPL"
    assert first["expiration"] == dt.date(2024, 11, 8)
    assert first["strike"] == 262.5
    assert first["right"] == "C"
    assert first["timestamp"] == dt.datetime(2024, 11, 4, 9, 30, tzinfo=ET)
    assert first["iv_error"] == 100.0 and first["bid"] == 0.0 and first["ask"] == 0.0
    assert first["lambda"] == 261.9304
    assert last["iv_error"] == -0.0199  # negative iv_error is real data, kept as is
    assert last["underlying_price"] == 221.20
    assert last["underlying_timestamp"] == dt.datetime(2024, 11, 4, 9, 50, tzinfo=ET)


def test_two_digit_fraction_is_milliseconds_in_new_york():
    table = parse_sample(SAMPLES / "v3_option_history_greeks_eod.csv")
    ts = table.column("underlying_timestamp")
    assert ts.type == pa.timestamp("ms", tz="America/New_York")
    assert ts[0].as_py() == dt.datetime(2024, 11, 4, 17, 15, 28, 710000, tzinfo=ET)
    assert table.column("timestamp")[0].as_py() == dt.datetime(
        2024, 11, 4, 15, 59, 59, 828000, tzinfo=ET
    )
    # 17:15:28.710 EST is 22:15:28.710 UTC: localized, not taken as UTC.
    assert ts.cast(pa.int64())[0].as_py() == int(
        dt.datetime(2024, 11, 4, 22, 15, 28, 710000, tzinfo=dt.UTC).timestamp() * 1000
    )
    row = table.to_pylist()[0]
    assert row["strike"] == 220.0 and row["gamma"] == 0.0495 and row["dual_delta"] == -0.5945


def test_eod_csv_exact_values():
    row = parse_sample(SAMPLES / "v3_option_history_eod.csv").to_pylist()[0]
    assert row["strike"] == 170.0 and row["right"] == "C"
    assert row["created"] == dt.datetime(2024, 11, 4, 17, 16, 56, 205000, tzinfo=ET)
    assert row["last_trade"] == dt.datetime(2024, 11, 4, 15, 48, 12, 5000, tzinfo=ET)
    assert (row["open"], row["close"], row["volume"], row["count"]) == (52.54, 52.40, 10, 3)
    assert (row["bid_size"], row["bid_exchange"], row["bid"], row["ask_condition"]) == (
        70,
        60,
        52.05,
        50,
    )


def test_open_interest_and_lists_exact_values():
    oi = parse_sample(SAMPLES / "v3_option_history_open_interest.csv").to_pylist()[0]
    assert oi["open_interest"] == 2732
    assert oi["timestamp"] == dt.datetime(2024, 11, 4, 6, 30, 4, tzinfo=ET)
    exps = parse_sample(SAMPLES / "v3_option_list_expirations.csv").column("expiration")
    assert exps.type == pa.date32()
    assert exps.to_pylist()[:3] == [dt.date(2012, 6, 1), dt.date(2012, 6, 8), dt.date(2012, 6, 16)]
    contracts = parse_sample(SAMPLES / "v3_option_list_contracts.csv").to_pylist()
    assert contracts[2] == {
        "root": "AAL",
        "expiration": dt.date(2022, 9, 30),
        "strike": 14.5,
        "right": "C",
    }
    assert contracts[3]["right"] == "P"


@pytest.mark.parametrize(
    "stem",
    [
        "v3_option_history_eod",
        "v3_option_history_greeks_eod",
        "v3_option_history_open_interest",
        "v3_option_history_quote",
    ],
)
def test_csv_json_and_ndjson_agree(stem: str):
    csv_table = parse_sample(SAMPLES / f"{stem}.csv")
    assert parse_sample(SAMPLES / f"{stem}.json").equals(csv_table)
    assert parse_sample(SAMPLES / f"{stem}.ndjson").equals(csv_table)


def test_greeks_first_order_json_agrees_with_csv():
    csv_table = parse_sample(SAMPLES / "v3_option_history_greeks_first_order.csv")
    assert parse_sample(SAMPLES / "v3_option_history_greeks_first_order.json").equals(csv_table)


def test_list_json_agrees_with_csv():
    for stem in ("v3_option_list_contracts", "v3_option_list_expirations"):
        assert parse_sample(SAMPLES / f"{stem}.json").equals(parse_sample(SAMPLES / f"{stem}.csv"))


def test_columnar_lumibot_fixture():
    rows = parse_sample(SAMPLES / "v3_option_history_quote_columnar_lumibot_fixture.json")
    rows = rows.to_pylist()
    assert [r["bid"] for r in rows] == [0.0, 2.97, 3.60]
    assert rows[1]["timestamp"] == dt.datetime(2024, 11, 15, 9, 31, tzinfo=ET)
    assert rows[2]["strike"] == 340.0 and rows[2]["right"] == "C"
    assert rows[0]["root"] == "TSLA" and rows[0]["expiration"] == dt.date(2024, 11, 22)


def test_v2_docs_example_list_expirations():
    envelope = parse_envelope((SAMPLES / "v2_list_expirations_docs_example.json").read_bytes())
    columns = envelope_columns(envelope)
    columns["expiration"] = columns.pop("date")
    text = to_v3_text(columns, SPECS["list_expirations"], root="AAPL")
    batch, malformed = BatchConverter(SPECS["list_expirations"]).convert(text)
    assert malformed == []
    assert batch.column("expiration").to_pylist() == [dt.date(2024, 10, 11), dt.date(2024, 10, 18)]
    assert batch.column("root").to_pylist() == ["AAPL", "AAPL"]


# --------------------------------------------------------------------------------------------
# Variable fractions, drift, malformed rows, truncation
# --------------------------------------------------------------------------------------------
QUOTE = (SAMPLES / "v3_option_history_quote.csv").read_bytes()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-11-04T17:15:28.7", dt.datetime(2024, 11, 4, 17, 15, 28, 700000, tzinfo=ET)),
        ("2024-11-04T17:15:28.71", dt.datetime(2024, 11, 4, 17, 15, 28, 710000, tzinfo=ET)),
        ("2024-11-04T17:15:28.712", dt.datetime(2024, 11, 4, 17, 15, 28, 712000, tzinfo=ET)),
        ("2024-11-04T17:15:28.712999", dt.datetime(2024, 11, 4, 17, 15, 28, 712000, tzinfo=ET)),
        ("2024-07-01T09:30:00", dt.datetime(2024, 7, 1, 9, 30, tzinfo=ET)),  # EDT
    ],
)
def test_timestamp_fractions(text: str, expected: dt.datetime):
    body = QUOTE.replace(b"2024-11-04T09:30:00", text.encode())
    table, _ = parse_csv_bytes(body, "quote")
    assert table.column("timestamp")[0].as_py() == expected


def test_extra_column_is_dropped_and_reported():
    lines = QUOTE.split(b"\r\n")
    body = b"\r\n".join([lines[0] + b",new_field"] + [line + b",x" for line in lines[1:-1]] + [b""])
    table, answer = parse_csv_bytes(body, "quote")
    assert answer.extra_columns == ("new_field",)
    assert table.schema == SCHEMAS["quote"] and table.num_rows == 5


def test_reordered_columns_are_mapped_by_name():
    lines = [line.split(b",") for line in QUOTE.split(b"\r\n")[:-1]]
    swapped = [b",".join([f[1], f[0], *f[2:]]) for f in lines]
    table, _ = parse_csv_bytes(b"\r\n".join(swapped) + b"\r\n", "quote")
    assert table.equals(parse_csv_bytes(QUOTE, "quote")[0])


def test_missing_column_is_a_schema_error_naming_it():
    body = QUOTE.replace(b",bid_condition,", b",bid_cond,", 1)
    with pytest.raises(SchemaError, match="bid_condition") as info:
        parse_csv_bytes(body, "quote")
    assert not info.value.retryable and info.value.category == "schema"


def test_malformed_rows_are_skipped_and_reported_with_their_text():
    body = (
        QUOTE.replace(b"598,5,4.55", b"598,5,abc")  # not a number
        .replace(b"58,46,4.30,50,221", b"58,46,4.30,50,221,7")  # one field too many
        .replace(b"394,43,3.90,50,45,47,4.00,50", b"394,43,3.90,50,45,47,4.00,99999")  # int16
    )
    table, answer = parse_csv_bytes(body, "quote")
    assert table.num_rows == 2
    texts = {line: reason for line, reason in answer.malformed}
    assert len(texts) == 3
    bad_bid = "AAPL,2024-11-08,220.000,CALL,2024-11-04T09:31:00,598,5,abc,50,424,9,4.70,50"
    assert "'bid'" in texts[bad_bid] and "abc" in texts[bad_bid]
    assert any("fields" in r for r in texts.values())
    assert any("'ask_condition'" in r for r in texts.values())


def test_bad_right_and_missing_strike_are_malformed():
    body = QUOTE.replace(b"CALL,2024-11-04T09:31", b"CAL,2024-11-04T09:31").replace(
        b"220.000,CALL,2024-11-04T09:32", b",CALL,2024-11-04T09:32"
    )
    table, answer = parse_csv_bytes(body, "quote")
    assert table.num_rows == 3
    reasons = sorted(reason for _, reason in answer.malformed)
    assert any("right" in r for r in reasons) and any("'strike'" in r for r in reasons)


def test_malformed_rows_across_many_blocks():
    header, row = QUOTE.split(b"\r\n")[:2]
    rows = [row] * 20_000
    rows[12_345] = row.replace(b",42,0.00,50", b",42,zz,50", 1)
    table, answer = parse_csv_bytes(b"\r\n".join([header, *rows, b""]), "quote", block_size=64_000)
    assert table.num_rows == 19_999 and len(answer.malformed) == 1


def test_body_without_final_crlf_is_truncated():
    with pytest.raises(TruncatedResponse):
        parse_csv_bytes(QUOTE[:-2], "quote")
    # Cut inside the last number: the row still parses, so only the missing line end tells.
    with pytest.raises(TruncatedResponse):
        parse_csv_bytes(QUOTE[:-4], "quote")


def test_content_length_mismatch_is_truncated():
    answer = CsvAnswer(
        BodyStream(io.BytesIO(QUOTE), url="x", content_length=len(QUOTE) + 10), SPECS["quote"]
    )
    with pytest.raises(TruncatedResponse, match="Content-Length"):
        list(answer)


def test_empty_body_is_truncated_and_header_only_is_zero_rows():
    with pytest.raises(TruncatedResponse):
        parse_csv_bytes(b"", "quote")
    header = QUOTE.split(b"\r\n")[0] + b"\r\n"
    table, _ = parse_csv_bytes(header, "quote")
    assert table.num_rows == 0 and table.schema == SCHEMAS["quote"]


def test_bare_lf_body_is_accepted_when_the_header_uses_lf():
    table, _ = parse_csv_bytes(QUOTE.replace(b"\r\n", b"\n"), "quote")
    assert table.equals(parse_csv_bytes(QUOTE, "quote")[0])


def test_connection_reset_mid_body_is_truncated():
    class Dropping(io.RawIOBase):
        def __init__(self):
            self.sent = False

        def readable(self):
            return True

        def read(self, n=-1):
            if not self.sent:
                self.sent = True
                return QUOTE[:200]
            raise ConnectionResetError("peer reset")

    with pytest.raises(TruncatedResponse, match="dropped"):
        list(CsvAnswer(BodyStream(Dropping(), url="x"), SPECS["quote"]))


def test_json_helpers_accept_ndjson_without_final_newline():
    text = (SAMPLES / "v3_option_history_open_interest.ndjson").read_text()
    assert not text.endswith("\n")
    table, _ = parse_ndjson(text, SPECS["open_interest"])
    assert table.column("open_interest").to_pylist() == [2732]
    assert json.loads(text)["strike"] == 220.0
