"""Run the benchmarks: ``python -m bench [--only NAME ...] [--quick]``.

Prints one JSON line per benchmark on stdout (progress goes to stderr). Exit code 0 when every
benchmark ran (whether or not it met its target), 1 when one of them failed to run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

from bench.harness import CpuMeter, progress, result_line

BENCHMARKS = (
    "pipeline_throughput",
    "terminal_schedule",
    "naive_baseline",
    "interactive_latency",
    "backfill_overhead",
    "backfill_efficiency",
    "compression",
    "graph_session",
    "reader_speed",
    "quality_cost",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="spx-data benchmarks (issue #7): one JSON line per benchmark on stdout.",
        epilog="Example: python -m bench --quick --only pipeline_throughput --only compression",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable); one of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (seconds each, for the smoke test); figures are not comparable",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    shared: dict = {}
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        progress(f"{name}: start{' (quick)' if args.quick else ''}")
        meter = CpuMeter()
        try:
            figures, target, met = module.run(args.quick, shared)
        except Exception:
            traceback.print_exc()
            progress(f"{name}: FAILED to run (traceback above)")
            failed.append(name)
            continue
        line = result_line(
            name,
            {"quick": args.quick, **figures},
            target=target,
            met=met,
            meter=meter,
        )
        print(json.dumps(line), flush=True)
        progress(f"{name}: done in {line['benchmark_seconds']} s, met={met}")
    if failed:
        progress(f"benchmarks that failed to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
