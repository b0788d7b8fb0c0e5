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
    lines = run_bench("pipeline_throughput", "terminal_schedule", "naive_baseline")

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


def test_the_compression_benchmark_rewrites_the_session_with_every_candidate():
    from bench.compression import QUICK_CANDIDATES

    line = run_bench("compression")["compression"]
    published, *candidates = line["candidates"]
    assert [c["name"] for c in candidates] == [c.name for c in QUICK_CANDIDATES]
    assert set(published["bytes"]) == set(line["datasets"]) == {"greeks", "eod", "open_interest"}
    # processed just now, so the session was published with the writer's settings
    assert line["ratio"] == line["as_published_ratio"] == published["ratio"] > 1
    assert line["rows"] > 0
    assert line["met"] == all(line["met_by_target"].values())
    for candidate in candidates:
        assert candidate["ratio"] > 1 and candidate["total_write_s"] > 0
        # every candidate's file answers the same three queries with the same rows
        assert {q: t["rows"] for q, t in candidate["duckdb"].items()} == {
            q: t["rows"] for q, t in candidates[0]["duckdb"].items()
        }
        assert all(t["rows"] > 0 and t["median_s"] > 0 for t in candidate["duckdb"].values())
    # a higher zstd level never makes the greeks file larger than level 1 on the same rows
    assert candidates[1]["bytes"]["greeks"] <= candidates[0]["bytes"]["greeks"]


def test_the_graph_benchmark_runs_the_session_through_dagster():
    line = run_bench("graph_session")["graph_session"]
    assert line["rows"] > 0 and line["requests"] > 0 and line["catalog_refreshed"] is True
    assert line["command_s"] > line["run_s"] > 0
    assert line["peak_rss_mb"] > 0 and line["cpu_s"] > 0
    assert line["met"] == (line["peak_rss_mb"] <= 1500)


def test_the_reader_benchmark_times_both_readers_on_the_same_files():
    line = run_bench("reader_speed")["reader_speed"]
    timed = line["timed"]
    assert (
        line["sessions"] == 3
        and line["clones"]["linked_files"] + line["clones"]["copied_files"] == 2 * 2
    )  # greeks and open_interest of each clone
    assert "hard-linking" in line["made_by"]
    # both sides answered the same question
    assert timed["aggregate_reader"]["rows"] == timed["aggregate_direct"]["rows"] > 0
    assert timed["chain_reader"]["rows"] == timed["chain_direct"]["rows"] > 0
    assert timed["chain_command"]["rows"] == timed["chain_reader"]["rows"]
    assert line["chain_s"] == timed["chain_command"]["median_s"] > 0
    assert line["met"] == all(line["met_by_target"].values())


def test_the_quality_benchmark_times_every_family_and_finds_the_planted_anomalies():
    from spx_dagster.core.quality import Family

    line = run_bench("quality_cost")["quality_cost"]
    assert set(line["family_seconds"]) == {f.value for f in Family}
    assert line["quality_s"] == pytest.approx(sum(line["family_seconds"].values()), abs=0.05)
    assert line["share_pct"] > 0 and line["rows"] > 0 and line["parts"] > 0
    assert line["validate_s_without_families"] > 0 and "wall_share_pct" in line
    assert line["planted"] > 0 and line["recall"] is not None
    assert set(line["recall_by_family"]) <= {f.value for f in Family}
    assert 0 < line["precision_rows"] <= 1
    assert line["met"] == all(line["met_by_target"].values())


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


@pytest.mark.slow
@pytest.mark.daemon
def test_backfill_efficiency_measures_the_terminal_time_of_a_daemon_backfill():
    line = run_bench("backfill_efficiency", timeout=900)["backfill_efficiency"]
    (chain,) = line["chains"]
    assert chain["sessions_done"] == chain["sessions"] == chain["runs"]
    assert 0 < chain["ideal_s"] < chain["wall_s"]
    assert 0 < chain["lanes_busy"] <= 1
    assert chain["requests"] > 0 and chain["estimate_s"] > 0
    # The estimate after the previous backfill measures its overhead from the runs of it and,
    # a short one, the warm-up's before it; the previous one's own estimate from the warm-up's.
    assert chain["estimate_overhead_basis"] == "backfill"
    assert chain["estimate_measured_runs"] == chain["sessions"] + chain["warm_up"]["runs"]
    previous = chain["previous"]
    assert previous["sessions_done"] == chain["sessions"] and previous["last"] < chain["first"]
    assert previous["estimate_measured_runs"] == chain["warm_up"]["runs"]
    assert chain["first_backfill_estimate_s"] > 0 and chain["pace_s"] > 0


def test_lpt_packs_longest_first_onto_the_least_loaded_lane():
    assert lpt_makespan([3, 3, 2, 2, 2], 2) == 7  # LPT's known 7/6 case: the optimum is 6
    assert lpt_makespan([5, 1, 1, 1, 1, 1], 4) == 5
    assert lpt_makespan([], 4) == 0


def test_only_refuses_an_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--only", "nonsense"])
    assert exit_info.value.code == 2
    assert "pipeline_throughput" in capsys.readouterr().err
