"""``spx-data demo``: the main job end to end on the built-in simulator, in a few minutes.

Starts the ThetaTerminal simulator on a free port, points a throwaway (or chosen)
``SPX_DATA_HOME`` at it (stored in that home's config store, so ``spx-data serve`` there sees
the same settings later), processes the latest closed sessions through Dagster with progress,
verifies them, refreshes the catalog and shows where everything is and what to try next.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import fail, note, print_table, say, warn

HELP = """Run the main job on the built-in ThetaTerminal simulator: a first look in minutes.

\b
Starts the simulator (fast profile) on a free port, points a new spx-data home at it (a fresh
temporary directory, or --home DIR), processes the latest closed trading sessions through
Dagster with live progress (a modest chain: expirations up to --max-dte days out), verifies
every published file against its manifest, refreshes the DuckDB catalog, and prints a summary,
the paths, a query to try and how to open the web UI on the demo's instance. Nothing outside
the demo's home is read or written. --keep leaves the simulator running afterwards (Ctrl-C
stops it) so you can try other commands against it.

\b
Examples:
  spx-data demo
  spx-data demo --sessions 5 --home ~/spx-demo --keep
"""

TRIGGER = "demo"
# Settings of the demo's home: the simulator's URL is added when it has started.
DEMO_SETTINGS = {
    "thetadata.api_version": "v3",
    "thetadata.subscription_tier": "standard",
}


def _prepare_home(home: Path | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix="spx-data-demo-")) if home is None else home
    path = path.expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _use_home(home: Path) -> list[str]:
    """Point this process at ``home`` and drop settings from the environment that would override
    the demo's (they stay in the user's shell); return the names dropped."""
    os.environ["SPX_DATA_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    dropped = [k for k in os.environ if k.startswith("SPX_DATA_") and k != "SPX_DATA_HOME"]
    for key in dropped:
        os.environ.pop(key)
    return sorted(dropped)


def _configure(home: Path, values: dict[str, str]) -> None:
    from spx_dagster.core.config import ConfigError, set_value

    for key, value in values.items():
        try:
            set_value(key, value, home=home, source="demo")
        except ConfigError as error:
            fail(f"the demo could not set {key} = {value} in {home}: {error}", exit_codes.USAGE)


def _try_query(output_dir: Path) -> tuple[list[tuple] | None, str | None]:
    """The first rows of the example query through the reader ``spx-data sql`` uses."""
    from spx_dagster.core.catalog import EXAMPLE_QUERY
    from spx_dagster.read import open_history

    try:
        with open_history(output_dir) as history:
            table = history.sql(EXAMPLE_QUERY)
        return list(zip(*(c.to_pylist() for c in table.columns), strict=True))[:10], None
    except Exception as error:  # the demo still shows the query; the error says why it failed
        return None, str(error)


@click.command("demo", help=HELP)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="The demo's SPX_DATA_HOME (default: a new temporary directory).",
)
@click.option(
    "--sessions",
    "session_count",
    type=click.IntRange(1, 30),
    default=3,
    show_default=True,
    help="How many of the latest closed sessions to process.",
)
@click.option(
    "--max-dte",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Expirations at most this many days after each session (processing.max_dte).",
)
@click.option(
    "--chain",
    type=click.Choice(["full", "tiny"]),
    default="full",
    show_default=True,
    help="The simulator's option chain: full (SPX-like strikes) or tiny (a few contracts).",
)
@click.option("--keep", is_flag=True, help="Keep the simulator running after the summary.")
def demo(home: Path | None, session_count: int, max_dte: int, chain: str, keep: bool) -> None:
    started = time.monotonic()
    home = _prepare_home(home)
    dropped = _use_home(home)
    if dropped:
        note("ignoring for the demo: " + ", ".join(dropped))
    from spx_dagster.simulator import SimulatorServer

    say(f"spx-data demo in {home}")
    with SimulatorServer(port=0, profile="fast", chain=chain, seed=0) as simulator:
        say(f"  simulator (ThetaTerminal v3, fast profile, {chain} chain) at {simulator.base_url}")
        _configure(
            home,
            {
                **DEMO_SETTINGS,
                "thetadata.base_url": simulator.base_url,
                "processing.max_dte": str(max_dte),
                # The tiny chain lists Fridays and monthlies only: not the real listing rules.
                **({"quality.listing_rules": "false"} if chain == "tiny" else {}),
            },
        )
        code = _run_demo(home, session_count, started)
        if keep:
            say(
                f"the simulator keeps serving at {simulator.base_url}; in another shell: "
                f"SPX_DATA_HOME={home} spx-data process <DATE>. Ctrl-C stops it."
            )
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                say("simulator stopped")
    sys.exit(code)


def _run_demo(home: Path, session_count: int, started: float) -> int:
    from spx_dagster.cli.progress_view import human_bytes, human_duration
    from spx_dagster.cli.read_options import load_settings_or_fail
    from spx_dagster.cli.session_running import (
        completed_report,
        describe_failure,
        refresh_catalog_or_warn,
        run_with_progress,
    )
    from spx_dagster.core import calendar
    from spx_dagster.core.config.home import catalog_path, dagster_home
    from spx_dagster.core.storage import load_manifest, verify_session
    from spx_dagster.ops import runs
    from spx_dagster.ops.instance import open_instance

    settings = load_settings_or_fail()
    output_dir = Path(settings.storage.output_dir)
    sessions = calendar.latest_sessions(session_count)
    names = ", ".join(d.isoformat() for d in sessions)
    say(f"  sessions: {names} (max_dte {settings.processing.max_dte})")
    instance = open_instance(settings)
    rows: list[list[Any]] = []
    failed = 0
    for session in sessions:
        if completed_report(settings, session) is not None:
            note(f"{session} is already complete in {home}; not fetched again")
            outcome = None
        else:
            outcome = run_with_progress(
                instance, session, settings=settings, tags=runs.run_tags(trigger=TRIGGER)
            )
            if outcome.status == runs.INTERRUPTED:
                say(f"demo interrupted during {session}; its home is {home}")
                return exit_codes.INTERRUPTED
            if not outcome.ok:
                failed += 1
                warn(describe_failure(outcome))
        report = verify_session(output_dir, session)
        manifest = load_manifest(output_dir, session)
        seconds = outcome.seconds if outcome is not None else None
        rows.append(
            [
                session.isoformat(),
                manifest.status if manifest else (outcome.status if outcome else "missing"),
                f"{manifest.rows:,}" if manifest else "-",
                len(manifest.files) if manifest else "-",
                human_bytes(manifest.bytes) if manifest else "-",
                f"{manifest.quality.score:.4f}"
                if manifest and manifest.quality.score is not None
                else "-",
                human_duration(seconds) if seconds is not None else "-",
                "ok" if report.ok else f"{len(report.errors)} problem(s)",
            ]
        )
        if not report.ok:
            failed += 1 if outcome is None or outcome.ok else 0
    catalog = refresh_catalog_or_warn(instance, trigger=TRIGGER)
    print_table(
        ["session", "status", "rows", "files", "size", "quality", "took", "verified"],
        rows,
        title="Demo sessions",
        no_wrap=["session"],
    )
    catalog_file = catalog_path(settings)
    result, error = _try_query(output_dir)
    click.echo(f"done in {human_duration(time.monotonic() - started)}")
    click.echo(f"  data:      {output_dir}/<dataset>/date=YYYY-MM-DD/*.parquet")
    click.echo(f"  manifests: {output_dir}/_manifests/")
    click.echo(f"  catalog:   {catalog_file} ({catalog.sessions or 0} session(s))")
    click.echo(f"  dagster:   {dagster_home()}")
    from spx_dagster.core.catalog import EXAMPLE_QUERY

    click.echo("query the data (no DuckDB binary needed; the same SQL works in any DuckDB):")
    click.echo(f'  SPX_DATA_HOME={home} spx-data sql "{EXAMPLE_QUERY}"')
    if result is not None:
        for row in result[:6]:
            click.echo("    " + "  ".join(str(v) for v in row))
    elif error:
        warn(f"the example query did not run here: {error}")
    click.echo("look around:")
    click.echo(f"  SPX_DATA_HOME={home} spx-data list")
    click.echo(f"  SPX_DATA_HOME={home} spx-data serve      # web UI at http://127.0.0.1:3000")
    return exit_codes.WORK_FAILED if failed else exit_codes.OK
