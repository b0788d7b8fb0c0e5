"""The ``spx-data`` entry point: a click group whose commands are imported only when invoked.

Lazy loading keeps ``spx-data --help`` and the config commands free of Dagster's import cost.
Each command lives in ``spx_dagster/cli/<name>_cmd.py`` and is registered in ``COMMANDS``.
"""

from __future__ import annotations

import importlib

import click

from spx_dagster.cli.exit_codes import INTERRUPTED

# command name -> "module:attribute"; the order is the order of `spx-data --help`.
COMMANDS: dict[str, str] = {
    "config": "spx_dagster.cli.config_cmd:config",
    "status": "spx_dagster.cli.status_cmd:status",
    "list": "spx_dagster.cli.list_cmd:list_sessions",
    "gaps": "spx_dagster.cli.gaps_cmd:gaps",
    "verify": "spx_dagster.cli.verify_cmd:verify",
    "errors": "spx_dagster.cli.errors_cmd:errors",
    "perf": "spx_dagster.cli.perf_cmd:perf",
    "quality": "spx_dagster.cli.quality_cmd:quality",
    "sql": "spx_dagster.cli.sql_cmd:sql",
    "chain": "spx_dagster.cli.chain_cmd:chain",
    "process": "spx_dagster.cli.process_cmd:process",
    "backfill": "spx_dagster.cli.backfill_cmd:backfill",
    "fill-gaps": "spx_dagster.cli.fill_gaps_cmd:fill_gaps",
    "retry": "spx_dagster.cli.retry_cmd:retry",
    "demo": "spx_dagster.cli.demo_cmd:demo",
    "serve": "spx_dagster.cli.serve_cmd:serve",
    "simulator": "spx_dagster.simulator.command:simulator",
}

# One-line summaries shown by `spx-data --help` without importing the command modules.
SUMMARIES: dict[str, str] = {
    "config": "Show, change, validate and reset the persisted configuration.",
    "status": "Health (terminal, instance, daemon, disk, memory, catalog), live runs, errors.",
    "list": "Processed sessions with status, rows, size, quality, duration and attempts.",
    "gaps": "Missing, failed, corrupt and low-quality sessions, prioritised, with estimates.",
    "verify": "Re-hash published files against their manifests; exit 1 on any mismatch.",
    "errors": "Error history of sessions with categories, patterns and advice.",
    "perf": "Throughput, duration and memory history with trends and alerts.",
    "quality": "Research quality families per session: scores, worst rows, trend, alerts.",
    "sql": "One read-only SQL query (DuckDB) over the published history.",
    "chain": "The option chain of one session at one minute (default 15:45 ET).",
    "process": "Process one session through the Dagster graph in process, with live progress.",
    "backfill": "Backfill a date range through the daemon; list, status, pause and resume.",
    "fill-gaps": "Turn the gap analysis into prioritised backfills (--dry-run shows the plan).",
    "retry": "Re-run failed sessions with a strategy chosen from the original failure.",
    "demo": "Simulator + the latest sessions end to end + verification + summary.",
    "serve": "Dagster web UI + daemon on this instance (dagster dev underneath).",
    "simulator": "Run the built-in ThetaTerminal simulator (wire-compatible v3/v2).",
}

HELP = """Build and keep a complete, verified history of SPX index options from ThetaData.

\b
Example:
  spx-data config validate
  spx-data simulator --port 25503 --profile realistic
"""


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context) -> object:
        # A Ctrl-C no command handles itself (while importing, opening the instance, waiting for
        # the terminal) is one line and the contract's exit 130, not click's "Aborted!" and 1.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo(err=True)  # ends the line of the terminal's ^C echo
            click.echo("interrupted (Ctrl-C)", err=True)
            ctx.exit(INTERRUPTED)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES.get(name, "")) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spx-data")
def cli() -> None:
    """Root group; see HELP."""


def main() -> None:
    cli(prog_name="spx-data")


if __name__ == "__main__":
    main()
