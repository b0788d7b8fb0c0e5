"""Benchmark 8 (issue 12): the readers against DuckDB reading the same files directly.

One session of the simulator's full chain is processed for real (plain stages in a child, as
``pipeline_throughput``); the other sessions of the month are made from it without re-running the
pipeline: its files are hard-linked under the other dates and each gets its own manifest (the
same rows and bytes; the output says so). Then, in a fresh child process:

- ``chain``: the option chain at 15:45 ET of the processed session, through ``History.chain``
  (in process) and through the whole ``spx-data chain DATE --output chain.csv`` command (a new
  interpreter each time: imports, settings, the query, the file), against DuckDB selecting the
  same minute straight from the listed file;
- ``aggregate``: a one-month ``SELECT ... GROUP BY`` over the 20 sessions' greeks through
  ``open_history().sql`` (a new ``History`` each time: manifests read, views built) against DuckDB
  over ``read_parquet('<output_dir>/greeks/*/*.parquet', hive_partitioning = true)``.

Medians of alternating runs; the page cache is warm for both sides (the hard links share pages).
Targets: reader overhead ≤ 10 % of the direct read, ``chain`` < 1 s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import SESSION, pipeline_env, progress, run_child, simulator, temp_home

NAME = "reader_speed"
OVERHEAD_TARGET_PCT = 10.0
CHAIN_TARGET_S = 1.0
MINUTE = "15:45"


@dataclasses.dataclass(frozen=True)
class Size:
    chain: str
    max_dte: int | None
    sessions: int
    runs: int


FULL = Size("full", None, 20, 7)
QUICK = Size("small", 2, 3, 2)

AGGREGATE = (
    "SELECT date, root, count(*) AS rows, avg(implied_vol) AS iv, avg((bid + ask) / 2) AS mid "
    "FROM {source} WHERE date BETWEEN DATE '{first}' AND DATE '{last}' GROUP BY ALL ORDER BY ALL"
)
CHAIN_DIRECT = (
    'SELECT root, expiration, strike, "right", timestamp, bid, ask, implied_vol, iv_error, delta, '
    "theta, vega, rho, underlying_price FROM read_parquet('{path}') "
    "WHERE timestamp = TIMESTAMPTZ '{stamp}' ORDER BY expiration, root, strike, \"right\""
)


def clone_sessions(output_dir: str, source: str, days: list[str]) -> dict:
    """Give each of ``days`` the files of ``source`` (hard links) and a manifest of its own."""
    from spx_dagster.core.storage import load_manifest
    from spx_dagster.core.storage.layout import OutputLayout

    out = Path(output_dir)
    original = load_manifest(out, dt.date.fromisoformat(source))
    linked = copied = 0
    for text in days:
        day = dt.date.fromisoformat(text)
        datasets = {}
        for name, entry in original.datasets.items():
            files = []
            for f in entry.files:
                target = out / name / f"date={day}" / Path(f.path).name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(out / f.path, target)
                    linked += 1
                except OSError:
                    shutil.copyfile(out / f.path, target)
                    copied += 1
                files.append(dataclasses.replace(f, path=target.relative_to(out).as_posix()))
            datasets[name] = dataclasses.replace(
                entry, files=files, quarantine_path=None, quarantined_rows=0
            )
        manifest = dataclasses.replace(original, session=day, datasets=datasets)
        path = OutputLayout.of(out).manifest_path(day)
        temp = path.with_name(f".tmp-{path.name}")
        temp.write_text(manifest.to_json())
        os.replace(temp, path)
    greeks = original.datasets["greeks"].rows
    return {"linked_files": linked, "copied_files": copied, "greeks_rows_per_session": greeks}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(output_dir: str, session: str, first: str, last: str, runs: int, home: str) -> dict:
    """Time the readers against direct DuckDB (in this fresh interpreter)."""
    import duckdb

    from spx_dagster.core.calendar import ET
    from spx_dagster.core.storage import load_manifest
    from spx_dagster.read import open_history

    out = Path(output_dir)
    day = dt.date.fromisoformat(session)
    manifest = load_manifest(out, day)
    greeks_file = out / manifest.datasets["greeks"].files[0].path
    stamp = dt.datetime.combine(day, dt.time(15, 45), tzinfo=ET).isoformat()

    def direct(sql: str) -> tuple[float, int]:
        connection = duckdb.connect()
        connection.execute("SET enable_progress_bar = false")
        started = time.perf_counter()
        rows = connection.sql(sql).to_arrow_table().num_rows
        seconds = time.perf_counter() - started
        connection.close()
        return seconds, rows

    def reader_sql(sql: str) -> tuple[float, int]:
        started = time.perf_counter()
        with open_history(out) as history:
            rows = history.sql(sql).num_rows
        return time.perf_counter() - started, rows

    def reader_chain() -> tuple[float, int]:
        started = time.perf_counter()
        with open_history(out) as history:
            rows = history.chain(day, at=MINUTE).num_rows
        return time.perf_counter() - started, rows

    target = Path(home) / "chain.csv"
    command = [sys.executable, "-m", "spx_dagster.cli.main", "chain", session, "--at", MINUTE]
    command += ["--output", str(target)]

    def chain_command() -> tuple[float, int]:
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        return seconds, sum(1 for _ in target.open()) - 1

    glob = str(out / "greeks" / "*" / "*.parquet").replace("'", "''")
    direct_source = f"read_parquet('{glob}', hive_partitioning = true)"
    aggregate_direct = AGGREGATE.format(source=direct_source, first=first, last=last)
    aggregate_reader = AGGREGATE.format(source="greeks", first=first, last=last)
    chain_direct = CHAIN_DIRECT.format(path=str(greeks_file).replace("'", "''"), stamp=stamp)

    times: dict[str, list[float]] = {}
    rows: dict[str, int] = {}
    cases = {
        "aggregate_direct": lambda: direct(aggregate_direct),
        "aggregate_reader": lambda: reader_sql(aggregate_reader),
        "chain_direct": lambda: direct(chain_direct),
        "chain_reader": reader_chain,
        "chain_command": chain_command,
    }
    for name, case in cases.items():  # warm-up: page cache, DuckDB's first-use costs
        rows[name] = case()[1]
    for _ in range(runs):
        for name, case in cases.items():
            times.setdefault(name, []).append(case()[0])
    return {
        name: {"median_s": _median(t), "runs": len(t), "rows": rows[name]}
        for name, t in times.items()
    }


def run(quick: bool, shared: dict) -> tuple[dict, dict, bool]:
    from spx_dagster.core.calendar import next_session

    size = QUICK if quick else FULL
    days = [SESSION]
    while len(days) < size.sessions:
        days.append(next_session(days[-1]))
    with simulator(chain=size.chain) as sim, temp_home(NAME) as home:
        env = pipeline_env(
            home,
            sim.base_url,
            processing__datasets="greeks,open_interest",
            processing__max_dte=size.max_dte,
        )
        progress(f"{NAME}: processing {SESSION} ({size.chain} chain) through the plain stages")
        processed = run_child("pipeline_run:run_stages", env=env, session=SESSION.isoformat())
        output_dir = str(home / "data")
        progress(f"{NAME}: cloning it to {len(days) - 1} more sessions (hard links + manifests)")
        clones = clone_sessions(output_dir, SESSION.isoformat(), [d.isoformat() for d in days[1:]])
        progress(f"{NAME}: timing the readers against DuckDB on the same files")
        timed = run_child(
            "reader_speed:measure",
            env=env,
            output_dir=output_dir,
            session=SESSION.isoformat(),
            first=days[0].isoformat(),
            last=days[-1].isoformat(),
            runs=size.runs,
            home=str(home),
        ).value
    overhead = (
        timed["aggregate_reader"]["median_s"] / timed["aggregate_direct"]["median_s"] - 1
    ) * 100
    chain_s = timed["chain_command"]["median_s"]
    met_by_target = {
        "overhead_pct": overhead <= OVERHEAD_TARGET_PCT,
        "chain_s": chain_s < CHAIN_TARGET_S,
    }
    figures = {
        "session": SESSION.isoformat(),
        "chain": size.chain,
        "sessions": len(days),
        "made_by": (
            f"1 session processed for real ({clones['greeks_rows_per_session']:,} greeks rows), "
            f"{len(days) - 1} made by hard-linking its files under other dates, one manifest each"
        ),
        "clones": clones,
        "processed_in_s": round(processed.wall_s, 1),
        "overhead_pct": round(overhead, 1),
        "chain_s": chain_s,
        "chain_in_process_s": timed["chain_reader"]["median_s"],
        "chain_direct_s": timed["chain_direct"]["median_s"],
        "timed": timed,
        "met_by_target": met_by_target,
    }
    target = {"overhead_pct": f"<= {OVERHEAD_TARGET_PCT}", "chain_s": f"< {CHAIN_TARGET_S}"}
    progress(
        f"{NAME}: reader overhead {overhead:.1f} % over {len(days)} sessions "
        f"(reader {timed['aggregate_reader']['median_s']} s, direct "
        f"{timed['aggregate_direct']['median_s']} s); chain {chain_s} s as a command, "
        f"{timed['chain_reader']['median_s']} s in process"
    )
    return figures, target, all(met_by_target.values())
