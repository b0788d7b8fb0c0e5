"""``spx-data status``: health of everything a run needs, activity, live runs and error rate."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import emit_json, json_option, stdout_console
from spx_dagster.cli.read_options import (
    human_bytes,
    human_seconds,
    human_time,
    imports_done,
    load_settings_or_fail,
)
from spx_dagster.core.units import human_count
from spx_dagster.ops.status import ERROR, OK, WARNING, collect_status

HELP = """Show the health of spx-data and what it is doing.

\b
Checks: ThetaTerminal (ready, unreachable, disconnected from ThetaData, wrong API version),
the Dagster instance (DAGSTER_HOME and its storage), the daemon (recent heartbeats: it runs
schedules, sensors and backfills), free disk at storage.output_dir and storage.temp_dir against
storage.min_free_gb, memory, and the catalog. Then the last activity, the runs in progress with
their live progress (stage, expirations done, rows/min, MB/min, memory, ETA) and the error rate
of recent runs.

\b
Exit codes: 0 healthy (warnings allowed), 1 a check failed, 3 ThetaTerminal unreachable.
--watch refreshes every --interval seconds until Ctrl-C, which ends it normally (exit 0);
with --json it prints one JSON document per line per refresh.

\b
Examples:
  spx-data status
  spx-data status --watch --interval 5
  spx-data status --json
"""


def exit_code_of(document: dict) -> int:
    terminal = document["checks"]["terminal"]["details"]["state"]
    if terminal == "unreachable":
        return exit_codes.TERMINAL_UNREACHABLE
    return exit_codes.WORK_FAILED if document["status"] == ERROR else exit_codes.OK


_STYLE = {OK: "green", WARNING: "yellow", ERROR: "bold red"}


def render(document: dict) -> Group:
    """The human view of a status document."""
    checks = Table(title="spx-data status", header_style="bold", show_lines=False)
    for column in ("check", "state", "detail"):
        checks.add_column(column, overflow="fold")
    for name, check in document["checks"].items():
        checks.add_row(
            Text(name), Text(check["level"], style=_STYLE[check["level"]]), Text(check["summary"])
        )
    parts: list[Any] = [checks]
    activity = document["activity"]
    run = activity["last_run"]
    lines = []
    if run:
        lines.append(
            f"last run: {run['job']} {run['session'] or ''} {run['status'].lower()} "
            f"({human_time(run['updated'])})"
        )
    if activity["last_published"]:
        pub = activity["last_published"]
        lines.append(f"last published session: {pub['session']} ({pub['status']})")
    lines.append(f"published sessions: {document['published_sessions']}")
    rates = document["error_rate"]
    lines.append(
        "error rate: "
        + "; ".join(
            f"{label.replace('_', ' ')} {r['failed']}/{r['runs']} failed"
            for label, r in rates.items()
        )
    )
    parts.append(Text("\n".join(lines)))
    runs = document["runs_in_progress"]
    if runs:
        table = Table(title="Runs in progress", header_style="bold")
        for column in (
            "session",
            "status",
            "stage",
            "current",
            "done",
            "rows/min",
            "MB/min",
            "memory",
            "ETA",
        ):
            table.add_column(column, overflow="fold")
        for row in runs:
            p = row.get("progress") or {}
            done = f"{p.get('done', 0)}/{p.get('total', 0)} ({(p.get('fraction') or 0):.0%})"
            table.add_row(
                *(
                    Text(str(cell))
                    for cell in (
                        row.get("session") or "-",
                        row["status"].lower(),
                        p.get("stage", "-"),
                        p.get("current") or "",
                        done if p else "-",
                        human_count(p["rows_per_min"]) if p.get("rows_per_min") else "-",
                        f"{p['mb_per_min']:,.1f}" if p.get("mb_per_min") else "-",
                        human_bytes(p.get("rss_bytes")) if p.get("rss_bytes") else "-",
                        human_seconds(p.get("eta_s")) if p.get("eta_s") else "-",
                    )
                )
            )
        parts.append(table)
    else:
        parts.append(Text("no run in progress"))
    overall = document["status"]
    parts.append(Text(f"overall: {overall}", style=_STYLE[overall]))
    return Group(*parts)


@click.command("status", help=HELP)
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="With --watch, stop after this many refreshes.",
)
@json_option
def status(watch: bool, interval: float, count: int | None, as_json: bool) -> None:
    settings = load_settings_or_fail()
    from spx_dagster.ops.status_facts import open_status_facts

    imports_done()
    facts = open_status_facts()
    try:
        if not watch:
            document = collect_status(settings, facts)
            if as_json:
                emit_json(document)
            else:
                stdout_console().print(render(document))
            raise SystemExit(exit_code_of(document))
        _watch(settings, facts, interval, count, as_json)
    finally:
        facts.close()


def _watch(settings: Any, facts: Any, interval: float, count: int | None, as_json: bool) -> None:
    from rich.live import Live

    shown = 0
    try:
        if as_json:
            while count is None or shown < count:
                if shown:
                    time.sleep(interval)
                click.echo(json.dumps(collect_status(settings, facts), default=str))
                shown += 1
            return
        console = stdout_console()
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while count is None or shown < count:
                if shown:
                    time.sleep(interval)
                live.update(render(collect_status(settings, facts)), refresh=True)
                shown += 1
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends: not an interrupted piece of work, so exit 0.
        return
