"""The encoding of published files (``WriterOptions``): what is written, and that every reader
the README names still reads it (pyarrow and DuckDB over the documented glob)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage import publish_dataset, session_lock
from spx_dagster.core.storage.parquet_io import (
    PUBLISHED_WRITER_OPTIONS,
    UNREPEATED_FLOATS,
    PublishedDatasetWriter,
    WriterOptions,
)
from spx_dagster_tests.factories import make_table

SESSION = dt.date(2024, 3, 15)
DICTIONARY = {"RLE_DICTIONARY", "PLAIN_DICTIONARY"}


def _encodings(path: Path) -> dict[str, set[str]]:
    meta = pq.read_metadata(path)
    found: dict[str, set[str]] = {}
    for i in range(meta.num_row_groups):
        for j in range(meta.num_columns):
            column = meta.row_group(i).column(j)
            found.setdefault(column.path_in_schema, set()).update(column.encodings)
            assert column.compression == "ZSTD"
    return found


def test_published_floats_have_no_dictionary_and_the_documented_glob_reads_them(tmp_path: Path):
    output = tmp_path / "out"
    chunks = [make_table("greeks", SESSION, n_strikes=40, seed=s) for s in (1, 2)]
    with session_lock(output, SESSION):
        entry = publish_dataset(output, SESSION, "greeks", chunks)
    pending = next((output / "_pending").glob("**/greeks.parquet"))

    encodings = _encodings(pending)
    unrepeated = UNREPEATED_FLOATS["greeks"]
    assert unrepeated and all(not encodings[name] & DICTIONARY for name in unrepeated)
    # the keys, times, flags and the floats that repeat keep their dictionary
    for name in ("root", "right", "timestamp", "flags", "bid", "ask", "implied_vol"):
        assert encodings[name] & DICTIONARY, name

    # Moved where the README's glob looks, both readers see every row with its values.
    final = output / "greeks" / f"date={SESSION}" / "greeks.parquet"
    final.parent.mkdir(parents=True)
    pending.rename(final)
    expected = pa.concat_tables(chunks)
    keys = [(k, "ascending") for k in DATASETS["greeks"].sort_keys]
    read = pq.read_table(final)
    assert read.num_rows == entry.rows == expected.num_rows
    assert read.select(expected.column_names).sort_by(keys).equals(expected.sort_by(keys))
    glob = f"{output}/greeks/*/*.parquet"
    with duckdb.connect() as con:
        total, implied_vol = con.execute(
            f"SELECT count(*), sum(implied_vol) FROM read_parquet('{glob}', "
            "hive_partitioning = true)"
        ).fetchone()
    assert total == expected.num_rows
    assert implied_vol == pytest.approx(pc.sum(expected["implied_vol"]).as_py())


def test_every_dataset_resolves_its_options_once_against_its_own_columns():
    for name, dataset in DATASETS.items():
        kwargs = PUBLISHED_WRITER_OPTIONS[name].parquet_kwargs(dataset.published_schema)
        assert kwargs["compression"] == "zstd"
        unrepeated = UNREPEATED_FLOATS.get(name, ())
        if unrepeated:
            assert set(kwargs["use_dictionary"]).isdisjoint(unrepeated)
            levels = kwargs["compression_level"]
            assert {c for c, level in levels.items() if level == 3} == set(unrepeated)
            assert set(levels) == set(dataset.published_schema.names)
        else:  # pyarrow's defaults, as every dataset was written before
            assert "use_dictionary" not in kwargs and "compression_level" not in kwargs


def test_writer_options_naming_a_missing_column_or_a_split_dictionary_column_are_refused():
    schema = DATASETS["greeks"].published_schema
    with pytest.raises(ValueError, match=r"\['gamma'\].*name existing columns only"):
        WriterOptions(no_dictionary=("gamma",)).parquet_kwargs(schema)
    with pytest.raises(ValueError, match=r"\['vanna'\].*name existing columns only"):
        WriterOptions(column_levels=(("vanna", 3),)).parquet_kwargs(schema)
    with pytest.raises(ValueError, match=r"\['delta'\].*add them to no_dictionary"):
        WriterOptions(byte_stream_split=("delta",)).parquet_kwargs(schema)
    kwargs = WriterOptions(byte_stream_split=("delta",), no_dictionary=("delta",)).parquet_kwargs(
        schema
    )
    assert kwargs["use_byte_stream_split"] == ["delta"] and "delta" not in kwargs["use_dictionary"]


def test_a_row_group_cap_splits_a_chunk_and_counts_its_row_groups(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(
        PUBLISHED_WRITER_OPTIONS,
        "open_interest",
        WriterOptions(compression_level=3, row_group_rows=7),
    )
    chunk = make_table("open_interest", SESSION, n_strikes=10)  # 20 contracts: 7 + 7 + 6
    with (
        session_lock(tmp_path, SESSION),
        PublishedDatasetWriter(tmp_path, SESSION, "open_interest") as writer,
    ):
        writer.write(chunk)
    assert writer.row_groups == 3 == pq.read_metadata(writer.pending).num_row_groups
