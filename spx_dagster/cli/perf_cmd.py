"""``spx-data perf``: throughput, duration and memory history with trends and alerts."""

from __future__ import annotations

import click

from spx_dagster.cli.output import emit_json, json_option, note, print_table, say, warn
from spx_dagster.cli.read_options import (
    human_bytes,
    human_seconds,
    human_time,
    imports_done,
    load_settings_or_fail,
    parse_range_or_fail,
    storage_or_fail,
)
from spx_dagster.core.units import human_count, human_rows_per_min

HELP = """Show processing performance: throughput, duration and memory, with trends and alerts.

\b
One line per processed session (rows/min, MB/min, duration, peak memory, retries), taken from
what each run recorded in Dagster (or from the manifest for sessions published outside Dagster).
Trends compare the last N processed sessions with the N before them (--window, default 10);
alerts flag throughput down more than 30 %, sessions taking 50 % longer, retries or memory up,
and memory close to the machine's total.

\b
Examples:
  spx-data perf
  spx-data perf --from 2024-01-01 --window 20
  spx-data perf --json
"""


@click.command("perf", help=HELP)
@click.option("--from", "from_text", metavar="D", help="First session (default: all).")
@click.option("--to", "to_text", metavar="D", help="Last session (default: all).")
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Sessions on each side of the trend comparison.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Latest sessions listed in the table (0: all); --json holds every one.",
)
@json_option
def perf(
    from_text: str | None, to_text: str | None, window: int, limit: int, as_json: bool
) -> None:
    import datetime as dt

    import psutil

    start, end = parse_range_or_fail(from_text, to_text)
    settings = load_settings_or_fail()
    storage_or_fail(settings)
    from spx_dagster.core.perf_report import perf_report
    from spx_dagster.defs.run_history import perf_samples
    from spx_dagster.ops.instance import open_instance

    imports_done()
    samples = perf_samples(
        open_instance(),
        settings.storage.output_dir,
        start or dt.date.min,
        end or dt.date.max,
    )
    report = perf_report(samples, window=window, memory_total_bytes=psutil.virtual_memory().total)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.samples:
        say(
            "no processed session in that range yet: run `spx-data process DATE` or "
            "`spx-data demo` first"
        )
        return
    shown = report.samples if limit == 0 else report.samples[-limit:]
    print_table(
        [
            "processed",
            "session",
            "rows",
            "size",
            "duration",
            "rows/min",
            "MB/min",
            "peak MB",
            "retries",
        ],
        (
            [
                human_time(s.when),
                s.session.isoformat(),
                f"{s.rows:,}",
                human_bytes(s.bytes),
                human_seconds(s.seconds),
                human_count(s.records_per_min) if s.records_per_min else "-",
                f"{s.mb_per_min:,.2f}" if s.mb_per_min else "-",
                f"{s.peak_rss_mb:,.0f}" if s.peak_rss_mb else "-",
                "-" if s.retries is None else s.retries,
            ]
            for s in shown
        ),
        title=f"Latest {len(shown)} of {len(report.samples)} processed session(s)",
        no_wrap=["processed", "session"],
    )
    if report.trends:
        print_table(
            [
                "metric",
                f"last {report.trends[next(iter(report.trends))].window}",
                "before",
                "change",
                "",
            ],
            (
                [
                    f"{t.metric} ({t.unit})",
                    f"{t.recent:,.2f}",
                    f"{t.previous:,.2f}",
                    "-" if t.change is None else f"{t.change:+.0%}",
                    {True: "better", False: "worse", None: "same"}[t.better],
                ]
                for t in report.trends.values()
            ),
            title="Trends",
        )
    med = report.summaries["records_per_min"].median
    say(
        f"{len(report.samples)} session(s), {report.total_rows:,} rows, "
        f"{human_bytes(report.total_bytes)}; median {human_rows_per_min(med or 0)}"
    )
    for line in report.notes:
        note(line)
    for alert in report.alerts:
        warn(alert.message if alert.level == "warning" else f"{alert.level}: {alert.message}")
