"""Benchmark 6: published parquet against the CSV received, and the writer settings behind it.

One session (2024-11-04 on the ``full`` chain: greeks, eod and open_interest) is processed for
real through the plain stages in a child process (``pipeline_run.run_stages``), which counts the
CSV bytes received per dataset as benchmark 1 does (``summary.bytes`` of the fetch). Then, in one
more child, each candidate ``WriterOptions`` (``core/storage/parquet_io.py``: zstd level,
``BYTE_STREAM_SPLIT`` or no dictionary on the float columns, row-group size) and sort order
rewrites the published chunks (one row group per expiration, as the publish writer receives them),
and is reported with its bytes, its ratio to the CSV received, the seconds of sorting and writing
the three files (the publish writer's work) and DuckDB's median seconds over the greeks file for
three queries of one day: an aggregate over every row, the chain at one minute and one
contract's day.

``SPX_BENCH_COMPRESSION_SESSION=<dir>`` keeps the processed session in ``<dir>`` and reuses it on
the next run (the candidates are cheap; the session is not).

Target (issue 14): >= 5 : 1 against the CSV received, with no slower DuckDB scans.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.harness import SESSION, pipeline_env, progress, run_child, simulator, temp_home

NAME = "compression"
DATASETS = ("greeks", "eod", "open_interest")
TARGET_RATIO = 5.0
SCAN_NOISE = 1.05  # a scan counts as slower than before above this ratio of the medians
KEEP_ENV = "SPX_BENCH_COMPRESSION_SESSION"
FIGURES_FILE = "session.json"
REPEATS = 5  # DuckDB timings: the median of this many runs after one warm-up


@dataclass(frozen=True)
class Size:
    chain: str
    max_dte: int | None


FULL = Size("full", None)  # the session of benchmark 1: 75 expirations, 10.6 M greeks rows
QUICK = Size("small", 2)


@dataclass(frozen=True)
class Candidate:
    """A way to write the published files: the writer options and the sort order of a chunk.

    ``floats`` is how the float columns are encoded: ``dictionary`` (pyarrow's default: a
    dictionary until it outgrows its page, then plain), ``plain`` (no dictionary) or ``bss``
    (no dictionary, ``BYTE_STREAM_SPLIT``; with a dictionary pyarrow never falls back to it).
    """

    name: str
    level: int | None = None
    floats: str = "dictionary"
    dictionary: bool = True  # for the other columns
    row_group_rows: int | None = None
    time_first: bool = False  # each chunk by (timestamp, strike, right) instead of contract first
    published: bool = False  # the publish writer's own options (PUBLISHED_WRITER_OPTIONS)
    unrepeated_plain: bool = False  # no dictionary on parquet_io.UNREPEATED_FLOATS only


BEFORE = Candidate("zstd 1 (the codec's default), dictionary everywhere: before issue 14")
CHOSEN = Candidate(
    "vega, rho, epsilon, lambda plain at zstd 3, the rest as before: published now",
    published=True,
)
CANDIDATES = (
    BEFORE,
    Candidate("zstd 3", level=3),
    Candidate("zstd 6", level=6),
    Candidate("zstd 9", level=9),
    Candidate("zstd 12", level=12),
    Candidate("zstd 3, floats BYTE_STREAM_SPLIT", level=3, floats="bss"),
    Candidate("zstd 1, floats plain", level=1, floats="plain"),
    Candidate("zstd 3, floats plain (no dictionary)", level=3, floats="plain"),
    CHOSEN,
    Candidate(
        "zstd 3 everywhere, vega, rho, epsilon, lambda plain", level=3, unrepeated_plain=True
    ),
    Candidate("zstd 1, vega, rho, epsilon, lambda plain", unrepeated_plain=True),
    Candidate("zstd 4, floats plain", level=4, floats="plain"),
    Candidate("zstd 3, no dictionary on any column", level=3, floats="plain", dictionary=False),
    Candidate(
        "zstd 3, floats plain, row groups <= 128 k rows",
        level=3,
        floats="plain",
        row_group_rows=128_000,
    ),
    Candidate("zstd 3, floats plain, time then contract", level=3, floats="plain", time_first=True),
    Candidate("zstd 3, time then contract", level=3, time_first=True),
)
QUICK_CANDIDATES = (BEFORE, CANDIDATES[1], CANDIDATES[5], CHOSEN, CANDIDATES[-2])


# ---------------------------------------------------------------------------------------------
# The processed session (parent)
# ---------------------------------------------------------------------------------------------
@contextmanager
def session_home(size: Size) -> Iterator[Path]:
    """A home holding the session processed at ``size``: kept under $SPX_BENCH_COMPRESSION_SESSION
    (and reused when it matches), else a temporary one."""
    kept = os.environ.get(KEEP_ENV)
    if not kept:
        with temp_home(NAME) as home:
            process_session(home, size)
            yield home
        return
    home = Path(kept)
    figures = home / FIGURES_FILE
    if figures.exists() and json.loads(figures.read_text()).get("size") == asdict(size):
        progress(f"{NAME}: reusing the session processed in {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        process_session(home, size)
    yield home


def process_session(home: Path, size: Size) -> None:
    """Fetch, validate and publish the session into ``home``; write what was received there."""
    with simulator(chain=size.chain) as sim:
        env = pipeline_env(
            home,
            sim.base_url,
            processing__datasets=",".join(DATASETS),
            processing__max_dte=size.max_dte,
        )
        progress(f"{NAME}: processing {SESSION} ({size})")
        figures = run_child("pipeline_run:run_stages", env=env, session=SESSION.isoformat()).value
    wire = dict.fromkeys(DATASETS, 0)
    for answer in figures["answers"]:
        wire[answer["request"].split()[0]] += answer["bytes"]
    assert sum(wire.values()) == figures["wire_bytes"], "every answer is one of the datasets"
    (home / FIGURES_FILE).write_text(
        json.dumps(
            {
                "size": asdict(size),
                "wire_bytes": wire,
                "rows": figures["rows"],
                "publish_s": figures["publish_s"],
                "requests": figures["requests"],
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# The candidates (child)
# ---------------------------------------------------------------------------------------------
def writer_options(candidate: Candidate, dataset: str, schema):
    """The candidate's ``WriterOptions`` for ``dataset``'s file of ``schema``."""
    import pyarrow as pa

    from spx_dagster.core.storage.parquet_io import (
        PUBLISHED_WRITER_OPTIONS,
        UNREPEATED_FLOATS,
        WriterOptions,
    )

    if candidate.published:
        return PUBLISHED_WRITER_OPTIONS[dataset]
    if candidate.unrepeated_plain:
        return WriterOptions(
            compression_level=candidate.level, no_dictionary=UNREPEATED_FLOATS.get(dataset, ())
        )
    floats = tuple(f.name for f in schema if pa.types.is_floating(f.type))
    others = tuple(n for n in schema.names if n not in floats)
    no_dictionary = (() if candidate.floats == "dictionary" else floats) + (
        () if candidate.dictionary else others
    )
    return WriterOptions(
        compression_level=candidate.level,
        byte_stream_split=floats if candidate.floats == "bss" else (),
        no_dictionary=no_dictionary,
        row_group_rows=candidate.row_group_rows,
    )


def sort_keys(dataset: str, time_first: bool) -> list[tuple[str, str]]:
    from spx_dagster.core.datasets import DATASETS as REGISTRY

    keys = list(REGISTRY[dataset].sort_keys)
    if time_first and "timestamp" in keys:  # a chunk is one (root, expiration)
        keys = ["root", "expiration", "timestamp", "strike", "right"]
    return [(k, "ascending") for k in keys]


def write_candidate(chunks, dataset: str, candidate: Candidate, path: Path) -> tuple[float, float]:
    """Sort and write ``chunks`` as the publish writer does: (sort seconds, write seconds).

    The publish writer sorts the next chunk on another thread while this one is written, so
    its time per chunk is nearer the larger of the two than their sum.
    """
    import pyarrow.parquet as pq

    schema = chunks[0].schema
    options = writer_options(candidate, dataset, schema)
    keys = sort_keys(dataset, candidate.time_first)
    sort_s = write_s = 0.0
    with pq.ParquetWriter(path, schema, **options.parquet_kwargs(schema)) as writer:
        for chunk in chunks:
            started = time.perf_counter()
            chunk = chunk.sort_by(keys)
            sorted_at = time.perf_counter()
            writer.write_table(chunk, row_group_size=options.row_group_size(chunk.num_rows))
            sort_s += sorted_at - started
            write_s += time.perf_counter() - sorted_at
        started = time.perf_counter()
    return sort_s, write_s + time.perf_counter() - started


def queries(session: dt.date, chunks) -> dict[str, str]:
    """Three DuckDB queries of one day's greeks: ``{path}`` is the file."""
    import pyarrow.compute as pc

    biggest = max(chunks, key=lambda c: c.num_rows)  # the monthly: the contract most asked for
    middle = biggest.slice(biggest.num_rows // 2, 1).to_pylist()[0]
    minute = dt.datetime.combine(session, dt.time(15, 45)).isoformat()
    assert pc.any(pc.equal(biggest["right"], middle["right"])).as_py()
    return {
        "aggregate": (
            'SELECT expiration, "right", count(*), avg(implied_vol), avg((bid + ask) / 2), '
            "max(underlying_price), sum(flags) FROM read_parquet('{path}') GROUP BY ALL"
        ),
        "chain_at_minute": (
            "SELECT * FROM read_parquet('{path}') "
            f"WHERE timestamp = TIMESTAMP '{minute}' AT TIME ZONE 'America/New_York'"
        ),
        "one_contract": (
            "SELECT timestamp, bid, ask, delta, implied_vol FROM read_parquet('{path}') "
            f"WHERE expiration = DATE '{middle['expiration']}' AND strike = {middle['strike']} "
            f"AND \"right\" = '{middle['right']}' ORDER BY timestamp"
        ),
    }


def time_queries(paths: list[Path], sql: dict[str, str]) -> list[dict[str, dict]]:
    """DuckDB's median seconds per query over each file of ``paths``.

    Rounds interleave the files (each query over every file, then again), so a burst of load
    from elsewhere on the machine stretches every candidate alike instead of one.
    """
    import duckdb

    seconds: list[dict[str, list[float]]] = [{q: [] for q in sql} for _ in paths]
    rows: list[dict[str, int]] = [{} for _ in paths]
    with duckdb.connect() as con:
        for repeat in range(REPEATS + 1):  # the first round warms the page cache and DuckDB
            for i, path in enumerate(paths):
                for name, query in sql.items():
                    started = time.perf_counter()
                    answer = con.execute(query.format(path=path)).fetchall()
                    if repeat:
                        seconds[i][name].append(time.perf_counter() - started)
                    else:
                        rows[i][name] = len(answer)
    return [
        {q: {"median_s": round(statistics.median(times[q]), 4), "rows": counts[q]} for q in sql}
        for times, counts in zip(seconds, rows, strict=True)
    ]


def measure_candidates(home: str, session: str, candidates: list[dict]) -> list[dict]:
    """Rewrite the published files of ``session`` in ``home`` with each candidate (child)."""
    import pyarrow.parquet as pq

    from spx_dagster.core.storage.layout import OutputLayout

    day = dt.date.fromisoformat(session)
    output = Path(home) / "data"
    scratch = Path(home) / "candidates"
    shutil.rmtree(scratch, ignore_errors=True)
    chunks, published = {}, {}
    for dataset in DATASETS:
        source = OutputLayout.of(output).published_file(dataset, day)
        if source.exists():
            parquet = pq.ParquetFile(source)
            chunks[dataset] = [parquet.read_row_group(i) for i in range(parquet.num_row_groups)]
            published[dataset] = source.stat().st_size
    results = [{"name": "as published by the pipeline", "bytes": published}]
    for number, fields in enumerate(candidates):
        candidate = Candidate(**fields)
        progress(f"{NAME}: writing {candidate.name}")
        row: dict = {"name": candidate.name, "bytes": {}, "sort_s": {}, "write_s": {}}
        for dataset, tables in chunks.items():
            path = scratch / str(number) / f"{dataset}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            sort_s, write_s = write_candidate(tables, dataset, candidate, path)
            row["sort_s"][dataset], row["write_s"][dataset] = round(sort_s, 3), round(write_s, 3)
            row["bytes"][dataset] = path.stat().st_size
            assert pq.ParquetFile(path).metadata.num_rows == sum(t.num_rows for t in tables)
        results.append(row)
    progress(f"{NAME}: DuckDB over the greeks file of each candidate, {REPEATS} rounds")
    timed = time_queries(
        [scratch / str(n) / "greeks.parquet" for n in range(len(candidates))],
        queries(day, chunks["greeks"]),
    )
    for row, duckdb_s in zip(results[1:], timed, strict=True):
        row["duckdb"] = duckdb_s
    shutil.rmtree(scratch)
    return results


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------
def summarize(rows: list[dict], wire: dict[str, int]) -> list[dict]:
    """Ratios to the CSV received; each scan and write against the first candidate's (the
    settings published before issue 14)."""
    csv_total = sum(wire[d] for d in rows[0]["bytes"])
    base = rows[1]
    for row in rows:
        total = sum(row["bytes"].values())
        row["greeks_ratio"] = round(wire["greeks"] / row["bytes"]["greeks"], 2)
        row["ratio"] = round(csv_total / total, 2)
        row["total_mb"] = round(total / 1e6, 1)
        if "write_s" in row:
            row["total_write_s"] = round(sum(row["write_s"].values()), 2)
            row["total_sort_s"] = round(sum(row["sort_s"].values()), 2)
            row["write_vs_before"] = round(row["total_write_s"] / base["total_write_s"], 2)
            row["scan_vs_before"] = {
                q: round(t["median_s"] / base["duckdb"][q]["median_s"], 2)
                for q, t in row["duckdb"].items()
            }
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table (printed on stderr, pasted into RESULTS.md)."""
    header = (
        "| candidate | MB | ratio (all) | ratio (greeks) | sort s | write s | aggregate s | "
        "chain at minute s | one contract s |"
    )
    lines = [header, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "write_s" not in r:
            lines.append(f"| {r['name']} | {r['total_mb']} | {r['ratio']} | {r['greeks_ratio']} |")
            continue
        scans = " | ".join(
            f"{t['median_s']:.3f} ({r['scan_vs_before'][q]:.2f}×)" for q, t in r["duckdb"].items()
        )
        lines.append(
            f"| {r['name']} | {r['total_mb']} | {r['ratio']} | {r['greeks_ratio']} | "
            f"{r['total_sort_s']} | {r['total_write_s']} ({r['write_vs_before']:.2f}×) | {scans} |"
        )
    return "\n".join(lines)


def run(quick: bool, shared: dict) -> tuple[dict, str, bool]:
    size = QUICK if quick else FULL
    candidates = QUICK_CANDIDATES if quick else CANDIDATES
    with session_home(size) as home:
        received = json.loads((home / FIGURES_FILE).read_text())
        progress(f"{NAME}: {len(candidates)} candidates over the published files")
        child = run_child(
            "compression:measure_candidates",
            home=str(home),
            session=SESSION.isoformat(),
            candidates=[asdict(c) for c in candidates],
        )
    rows = summarize(child.value, received["wire_bytes"])
    progress(f"{NAME}: table\n{table(rows)}")
    published, wire = rows[0], received["wire_bytes"]
    chosen = next(r for r in rows if r["name"] == CHOSEN.name)
    met_by_target = {
        "ratio": chosen["ratio"] >= TARGET_RATIO,
        "no_slower_scans": all(v <= SCAN_NOISE for v in chosen["scan_vs_before"].values()),
    }
    figures = {
        "session": SESSION.isoformat(),
        "chain": size.chain,
        "max_dte": size.max_dte,
        "datasets": list(published["bytes"]),
        "rows": received["rows"],
        "csv_mb": {d: round(wire[d] / 1e6, 1) for d in published["bytes"]},
        "published_mb": {d: round(b / 1e6, 1) for d, b in chosen["bytes"].items()},
        "ratio": chosen["ratio"],  # the publish writer's settings, on this session's rows
        "greeks_ratio": chosen["greeks_ratio"],
        "as_published_ratio": published["ratio"],  # when the session was processed (may be kept)
        "pipeline_publish_s": round(received["publish_s"], 2),
        "chosen": CHOSEN.name,
        "chosen_write_vs_before": chosen["write_vs_before"],
        "chosen_scan_vs_before": chosen["scan_vs_before"],
        "met_by_target": met_by_target,
        "candidates": rows,
        "child_peak_rss_mb": round(child.peak_rss_mb),
    }
    target = (
        f">= {TARGET_RATIO} : 1 vs the CSV received; DuckDB scans no slower than before "
        f"(each median <= {SCAN_NOISE}x)"
    )
    return figures, target, all(met_by_target.values())
