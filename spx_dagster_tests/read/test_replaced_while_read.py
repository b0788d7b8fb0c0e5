"""DuckDB reading a parquet file that a re-publish renames over: every way it fails is known.

A real DuckDB counts a real file while another process renames files of other layouts over it
(as a re-publish does). Its footer and its pages come from separate opens, so many queries fail;
each failure must be one ``replaced_while_read`` recognises, or the reader (and the README's
contract) would call a re-publish a broken query. CI met ``don't know what type: \\r``, which the
first list of signs did not know.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections import Counter

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from spx_dagster.read.history import replaced_while_read

RACE_SECONDS = 4.0


def _write_variants(directory, count: int = 4) -> list[str]:
    """Files of one schema and different layouts (rows, row groups), like a re-publish's."""
    paths = []
    for i in range(count):
        rows = 20_000 * (i + 1)
        table = pa.table(
            {
                "price": pa.array([(k * 7919 % 1000) / 7.0 for k in range(rows)]),
                "size": pa.array([k * 31 % 977 for k in range(rows)]),
                "root": pa.array([("SPX", "SPXW")[(k + i) % 2] for k in range(rows)]),
            }
        )
        path = str(directory / f"variant-{i}.parquet")
        pq.write_table(table, path, compression="zstd", row_group_size=5_000 * (i + 1))
        paths.append(path)
    return paths


def _rename_over(variants: list[str], target: str, stop) -> None:
    i = 0
    while not stop.is_set():
        temp = f"{target}.tmp-{i}"
        shutil.copyfile(variants[i % len(variants)], temp)
        os.replace(temp, target)
        i += 1


def test_every_failure_of_a_read_racing_a_rename_is_recognised(tmp_path):
    variants = _write_variants(tmp_path)
    published = tmp_path / "published"
    published.mkdir()
    target = str(published / "greeks.parquet")
    shutil.copyfile(variants[0], target)
    stop = multiprocessing.get_context("spawn").Event()
    renamer = multiprocessing.get_context("spawn").Process(
        target=_rename_over, args=(variants, target, stop)
    )
    renamer.start()
    outcomes: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    try:
        with duckdb.connect() as connection:
            deadline = time.monotonic() + RACE_SECONDS
            while time.monotonic() < deadline:
                try:
                    connection.sql(
                        f"SELECT count(*), sum(hash(price, size, root)) "
                        f"FROM read_parquet('{published}/*.parquet')"
                    ).fetchall()
                    outcomes["read"] += 1
                except duckdb.Error as error:
                    outcomes["failed"] += 1
                    if not replaced_while_read(error):
                        unknown[f"{type(error).__name__}: {str(error)[:80]}"] += 1
    finally:
        stop.set()
        renamer.join(timeout=10)
    print(f"\n{dict(outcomes)}; unrecognised: {dict(unknown)}")
    assert outcomes["read"] > 0
    assert not unknown


def test_duckdbs_own_errors_are_not_taken_for_a_replaced_file(tmp_path):
    bad = tmp_path / "not-parquet.parquet"
    bad.write_text("date,strike\n")
    queries = (
        "SELEC 1",
        "SELECT missing_column",
        "SELECT * FROM missing_table",
        "SELECT CAST('a' AS INTEGER)",
        f"SELECT * FROM read_parquet('{bad}')",
    )
    with duckdb.connect() as connection:
        for query in queries:
            try:
                connection.sql(query).fetchall()
            except duckdb.Error as error:
                assert not replaced_while_read(error), (query, error)
            else:
                raise AssertionError(f"{query} did not fail")
