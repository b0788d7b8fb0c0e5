"""``spx_dagster.read`` and the catalog over sessions published for real: committed files only,
typed empty views, a fresh snapshot per query, one retry when a listed file vanishes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spx_dagster.core.catalog import dataset_select
from spx_dagster.core.datasets import DATASETS
from spx_dagster.core.storage import load_manifest
from spx_dagster.core.storage.committed import committed_files, read_committed
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster.read import FilesChanged, QueryError, open_history
from spx_dagster_tests.cli.reading_history import (
    COMPLETE,
    FAILED,
    NO_DATA,
    history,  # noqa: F401  (fixture)
)
from spx_dagster_tests.read.published import (
    COMMITTED,
    UNLISTED_DAY,
    copy_history,
    manifest_rows,
    plant_unlisted_files,
)


def reader_rows(reader, view: str) -> dict:
    table = reader.sql(f"SELECT date, count(*) AS n FROM {view} GROUP BY date ORDER BY date")
    return dict(zip(*table.to_pydict().values(), strict=True))


def test_committed_lists_exactly_the_files_of_readable_manifests(history, tmp_path):  # noqa: F811
    output_dir = copy_history(history, tmp_path)
    plant_unlisted_files(output_dir)
    committed = read_committed(output_dir)
    assert committed.sessions == COMMITTED  # the failed session has no manifest
    assert FAILED not in committed.manifests and UNLISTED_DAY not in committed.manifests
    greeks = committed_files(output_dir, "greeks")
    expected = [
        output_dir / f.path
        for day in COMPLETE
        for f in load_manifest(output_dir, day).datasets["greeks"].files
    ]
    assert [f.path for f in greeks] == expected
    assert [f.session for f in greeks] == COMPLETE
    assert committed_files(output_dir, "greeks", start=COMPLETE[1], end=COMPLETE[1]) == greeks[1:2]


def test_an_unreadable_manifest_is_skipped_and_named(history, tmp_path):  # noqa: F811
    output_dir = copy_history(history, tmp_path)
    OutputLayout.of(output_dir).manifest_path(COMPLETE[1]).write_text("{ not json")
    committed = read_committed(output_dir)
    assert COMPLETE[1] not in committed.manifests
    assert "re-publish" in committed.unreadable[COMPLETE[1]]
    with open_history(output_dir) as reader:
        assert COMPLETE[1] not in reader_rows(reader, "greeks")


def test_the_reader_never_reads_unlisted_files(history, tmp_path):  # noqa: F811
    output_dir = copy_history(history, tmp_path)
    expected = manifest_rows(output_dir, "greeks")
    plant_unlisted_files(output_dir)
    with open_history(output_dir) as reader:
        assert reader_rows(reader, "greeks") == expected
        assert reader.dataset("greeks").num_rows == sum(expected.values())


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_the_empty_view_has_the_types_of_a_published_file(dataset, history, tmp_path):  # noqa: F811
    published = committed_files(history.output_dir, dataset)
    if published:
        source = published[0].path
    else:  # not published by default: a file written with the dataset's schema, as publish does
        source = tmp_path / dataset / "date=2024-11-04" / f"{dataset}.parquet"
        source.parent.mkdir(parents=True)
        pq.write_table(DATASETS[dataset].published_schema.empty_table(), source)
    connection = duckdb.connect()
    described = [
        connection.execute(f"DESCRIBE {dataset_select(dataset, paths)}").fetchall()
        for paths in ([source], [])
    ]
    assert [c[:2] for c in described[1]] == [c[:2] for c in described[0]]


def test_sessions_files_and_quality_come_from_the_manifests(history):  # noqa: F811
    with open_history(history.output_dir) as reader:
        sessions = reader.sessions()
        assert sessions.column("session").to_pylist() == COMMITTED
        status = reader.sql("SELECT session, status FROM sessions").to_pydict()
        status = dict(zip(status["session"], status["status"], strict=True))
        assert status[NO_DATA] == "no_data" and status[COMPLETE[0]] == "complete"
        files = reader.sql("SELECT session, dataset, path, rows FROM files ORDER BY ALL")
        listed = sorted(
            (day, name, f.path, f.rows)
            for day in COMMITTED
            for name, entry in load_manifest(history.output_dir, day).datasets.items()
            for f in entry.files
        )
        assert list(zip(*files.to_pydict().values(), strict=True)) == listed
        parts = reader.sql("SELECT DISTINCT part FROM quality").column("part").to_pylist()
        assert "score" in parts


def test_each_query_sees_the_sessions_committed_when_it_starts(history, tmp_path):  # noqa: F811
    output_dir = copy_history(history, tmp_path)
    with open_history(output_dir) as reader:
        assert set(reader_rows(reader, "greeks")) == set(COMPLETE)
        manifest = OutputLayout.of(output_dir).manifest_path(COMPLETE[0])
        saved = manifest.read_bytes()
        manifest.unlink()  # unpublished: its files stay on disk but are no longer committed
        count = reader.sql("SELECT count(DISTINCT date) AS n FROM greeks").column("n")[0]
        assert count.as_py() == 2
        assert COMPLETE[0] not in reader.sessions().column("session").to_pylist()
        manifest.write_bytes(saved)  # published again
        assert set(reader_rows(reader, "greeks")) == set(COMPLETE)


def _relist_in_place(output_dir: Path, day: dt.date, old: str, new: str) -> None:
    """Point the manifest of ``day`` at ``new`` instead of ``old`` without changing its stamp
    (same inode, size and mtime): a reader cannot tell that it changed before it reads."""
    path = OutputLayout.of(output_dir).manifest_path(day)
    stat = path.stat()
    text = path.read_text()
    assert len(new) == len(old) and old in text
    with open(path, "r+") as handle:
        handle.write(text.replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_file_that_vanishes_before_the_query_is_read_from_a_fresh_snapshot(
    history,  # noqa: F811
    tmp_path,
):
    output_dir = copy_history(history, tmp_path)
    expected = manifest_rows(output_dir, "greeks")
    with open_history(output_dir) as reader:
        assert reader_rows(reader, "greeks") == expected
        listed = (
            output_dir / load_manifest(output_dir, COMPLETE[1]).datasets["greeks"].files[0].path
        )
        moved = listed.with_name(listed.name.replace("greeks", "greekz", 1))
        listed.rename(moved)  # re-published under another name, between snapshot and query
        _relist_in_place(output_dir, COMPLETE[1], listed.name, moved.name)
        assert reader_rows(reader, "greeks") == expected

        moved.unlink()  # gone for good while its manifest still lists it
        with pytest.raises(FilesChanged, match="re-published or removed"):
            reader.sql("SELECT count(*) FROM greeks")


def test_dataset_reads_a_range_with_columns_and_a_filter(history):  # noqa: F811
    with open_history(history.output_dir) as reader:
        table = reader.dataset(
            "greeks",
            start=COMPLETE[1],
            end=str(COMPLETE[2]),
            columns=["date", "root", "strike", "delta"],
            filter="root = 'SPXW' AND delta > 0",
        )
        assert table.column_names == ["date", "root", "strike", "delta"]
        assert set(table.column("date").to_pylist()) == set(COMPLETE[1:])
        assert set(table.column("root").to_pylist()) == {"SPXW"}
        assert min(table.column("delta").to_pylist()) > 0
        assert reader.dataset("quote").num_rows == 0
        assert reader.dataset("quote").schema.names == [
            *DATASETS["quote"].published_schema.names,
            "date",
        ]
        pandas = reader.dataset("eod", start=COMPLETE[0], end=COMPLETE[0]).to_pandas()
        assert len(pandas) == manifest_rows(history.output_dir, "eod")[COMPLETE[0]]
        with pytest.raises(QueryError, match="no dataset named 'greek'; datasets: greeks"):
            reader.dataset("greek")
        with pytest.raises(QueryError, match="greeks has no column 'delat'; its columns: root"):
            reader.dataset("greeks", columns=["delat"])
        with pytest.raises(QueryError, match="reversed"):
            reader.dataset("greeks", start=COMPLETE[2], end=COMPLETE[0])


def test_query_errors_name_what_is_wrong_and_list_what_exists(history):  # noqa: F811
    with open_history(history.output_dir) as reader:
        with pytest.raises(QueryError) as error:
            reader.sql("SELECT * FROM greek")
        assert str(error.value) == (
            "no table or view named 'greek'; tables: sessions, files, quality; "
            "views: greeks, eod, open_interest, quote, greeks_eod"
        )
        with pytest.raises(QueryError) as error:
            reader.sql("SELECT bidd FROM greeks WHERE date = '2024-11-04'")
        assert str(error.value).startswith("no column named 'bidd' in greeks; greeks has root, ")
        assert "implied_vol" in str(error.value)
        with pytest.raises(QueryError, match="a CREATE statement changes things"):
            reader.sql("CREATE TABLE x AS SELECT 1")
        with pytest.raises(QueryError, match="exactly one statement, not 2"):
            reader.sql("SELECT 1; SELECT 2")
        with pytest.raises(QueryError, match="does not parse"):
            reader.sql("SELEC 1")


def test_the_reader_never_imports_dagster(history):  # noqa: F811
    script = (
        "import sys\n"
        "from spx_dagster.read import open_history\n"
        f"h = open_history({str(history.output_dir)!r})\n"
        "assert h.sql('SELECT count(*) AS n FROM greeks').column('n')[0].as_py() > 0\n"
        f"assert h.chain('{COMPLETE[0]}').num_rows > 0\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_open_history_defaults_to_the_configured_output_dir(history):  # noqa: F811
    with open_history() as reader:
        assert reader.output_dir == history.output_dir
        assert reader.sessions().num_rows == len(COMMITTED)


def test_arrow_results_convert_to_pandas(history):  # noqa: F811
    with open_history(history.output_dir) as reader:
        frame = reader.sql("SELECT * FROM greeks LIMIT 5").to_pandas()
    assert list(frame.columns) == [*DATASETS["greeks"].published_schema.names, "date"]
    assert str(frame["timestamp"].dt.tz) == "America/New_York"
    assert isinstance(pa.Table.from_pandas(frame), pa.Table)
