"""Smoke test of ``python -m bench`` (issue #7): the benchmarks run and print sane JSON lines.

Not timed: the figures depend on the machine and on what else runs on it. Each benchmark runs
with ``--quick`` (small sizes) in a subprocess, as ``make bench`` runs them, against the real
simulator over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, parse_args
from bench.terminal_schedule import lpt_makespan

REPO = Path(__file__).resolve().parents[2]
MACHINE_KEYS = {"cpu_count", "cpu_model", "ram_gb", "python", "dagster"}


def run_bench(*names: str, timeout: float = 300) -> dict[str, dict]:
    args = [arg for name in names for arg in ("--only", name)]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["benchmark"] for line in lines] == [n for n in BENCHMARKS if n in names]
    for line in lines:
        assert line["quick"] is True
        assert "target" in line and line["met"] in (True, False, None)
        assert set(line["machine"]) >= MACHINE_KEYS and line["machine"]["cpu_count"] >= 1
        assert len(line["load_average"]["before"]) == 3
    return {line["benchmark"]: line for line in lines}


def test_data_benchmarks_print_one_sane_line_each():
    lines = run_bench("pipeline_throughput", "terminal_schedule", "naive_baseline", "compression")

    throughput = lines["pipeline_throughput"]
    assert throughput["rows"] > 0 and throughput["requests"] > 0
    assert throughput["bound"]["same_bytes"] is True
    assert throughput["bound"]["rows"] == throughput["rows"]
    assert throughput["ratio_to_bound"] > 0 and throughput["pipeline"]["records_per_min"] > 0
    assert throughput["pipeline"]["peak_rss_mb"] > 0 and throughput["pipeline"]["cpu_s"] > 0
    assert throughput["pipeline"]["rejected_rows"] == 0
    assert throughput["met"] == all(throughput["met_by_target"].values())

    schedule = lines["terminal_schedule"]
    assert schedule["profile"] == "realistic" and schedule["requests"] > schedule["lanes"]
    # The ideal packs the measured request times: the real schedule cannot beat it by much.
    assert schedule["ratio"] > 0.9 and schedule["ideal_s"] >= schedule["lpt_makespan_s"]
    assert schedule["met"] == (schedule["ratio"] <= 1.15)

    naive = lines["naive_baseline"]
    assert naive["same_rows"] is True and naive["speedup"] > 0
    assert naive["naive"]["json_mb"] > naive["ours"]["csv_mb"] > 0  # JSON is the wordier wire

    compression = lines["compression"]
    assert compression["measured_by"] == "pipeline_throughput run"
    assert compression["rows"] == throughput["rows"]
    assert compression["ratio"] > 1 and compression["parquet_mb"] == throughput["parquet_mb"]


def test_the_graph_benchmark_runs_the_session_through_dagster():
    line = run_bench("graph_session")["graph_session"]
    assert line["rows"] > 0 and line["requests"] > 0 and line["catalog_refreshed"] is True
    assert line["command_s"] > line["run_s"] > 0
    assert line["peak_rss_mb"] > 0 and line["cpu_s"] > 0
    assert line["met"] == (line["peak_rss_mb"] <= 1500)


@pytest.mark.slow
def test_interactive_latency_times_the_commands_on_a_seeded_history():
    line = run_bench("interactive_latency")["interactive_latency"]
    assert line["history"]["published"] == line["history"]["catalog_sessions"] > 0
    assert line["history"]["sessions"] > line["history"]["published"]
    for name in ("help", "status", "gaps"):
        assert line["commands"][name]["median_s"] > 0
        assert set(line["commands"][name]["exit_codes"]) <= {0, 1}


@pytest.mark.slow
@pytest.mark.daemon
def test_backfill_overhead_runs_every_session_through_the_daemon():
    line = run_bench("backfill_overhead", timeout=600)["backfill_overhead"]
    assert line["sessions_done"] == line["sessions"] == line["runs"]
    assert line["wall_s"] > line["in_process_per_session_s"] > 0
    assert line["median_start_to_end_s"] > 0


def test_lpt_packs_longest_first_onto_the_least_loaded_lane():
    assert lpt_makespan([3, 3, 2, 2, 2], 2) == 7  # LPT's known 7/6 case: the optimum is 6
    assert lpt_makespan([5, 1, 1, 1, 1, 1], 4) == 5
    assert lpt_makespan([], 4) == 0


def test_only_refuses_an_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--only", "nonsense"])
    assert exit_info.value.code == 2
    assert "pipeline_throughput" in capsys.readouterr().err
