"""The catalog's views over sessions published for real read the committed files only, and every
dataset has a view (issue 12): a file no manifest lists never shows, an unpublished dataset is
an empty view with its columns."""

from __future__ import annotations

import duckdb

from spx_dagster.core.catalog import refresh_catalog
from spx_dagster.core.datasets import DATASETS
from spx_dagster_tests.cli.reading_history import history  # noqa: F401  (fixture)
from spx_dagster_tests.read.published import copy_history, manifest_rows, plant_unlisted_files


def rows_per_day(connection, view: str) -> dict:
    query = f"SELECT date, count(*) FROM {view} GROUP BY date ORDER BY date"
    return dict(connection.execute(query).fetchall())


def test_the_catalog_never_reads_unlisted_files(history, tmp_path):  # noqa: F811
    """Observed 1: the views globbed every parquet file, so the rows of a session no manifest
    lists (and a re-publish's file beside the listed one) were visible."""
    output_dir = copy_history(history, tmp_path)
    expected = manifest_rows(output_dir, "greeks")
    plant_unlisted_files(output_dir)
    with duckdb.connect(str(tmp_path / "catalog.duckdb")) as connection:
        refresh_catalog(connection, output_dir)
        assert rows_per_day(connection, "greeks") == expected


def test_a_dataset_without_files_is_an_empty_typed_view(history, tmp_path):  # noqa: F811
    """Before: the view of a dataset nobody published (quote, greeks_eod) was dropped, so a
    query naming it failed with 'table does not exist'."""
    output_dir = copy_history(history, tmp_path)
    with duckdb.connect(str(tmp_path / "catalog.duckdb")) as connection:
        refresh_catalog(connection, output_dir)
        for dataset in DATASETS:
            columns = connection.execute(f"DESCRIBE {dataset}").fetchall()
            assert [c[0] for c in columns] == [*DATASETS[dataset].published_schema.names, "date"]
        assert connection.execute("SELECT count(*) FROM quote").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM greeks_eod").fetchone() == (0,)
