"""``spx-data process DATE``: one session through the Dagster graph, in process, with progress.

The session's three assets run on the persistent instance (``DAGSTER_HOME``), so the run shows in
the web UI with its checks; the catalog is refreshed after. The pieces ``retry`` and ``demo``
share with it (date, storage and terminal checks, the run with its progress bar, the summary)
are in ``cli/session_running.py``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import emit_json, fail, json_option, note, say, stderr_console
from spx_dagster.cli.read_options import load_settings_or_fail, storage_or_fail
from spx_dagster.cli.session_running import (
    TRIGGER,
    completed_report,
    describe_failure,
    describe_success,
    interrupted_after_publish,
    refresh_catalog_or_warn,
    run_with_progress,
    session_or_fail,
    terminal_or_fail,
)

HELP = """Process one trading session through the Dagster graph, in this process.

\b
Fetches the session from ThetaTerminal (every root and expiration of the configured datasets),
validates it and publishes it atomically under storage.output_dir, as a run of spx_session_job
on the instance at DAGSTER_HOME (so it shows in the web UI with its checks), then refreshes the
catalog. A live progress bar on stderr shows the stage, the current root and expiration,
requests done/total, rows/min, MB/min, memory and ETA. A complete session is left alone unless
--force is given; a re-run replaces it atomically.

\b
Ctrl-C stops cleanly: requests in flight finish, their answers stay staged for the next run to
resume from, the run is marked failed with category `interrupted`, nothing half-written is left
under the output directory, and the exit code is 130. A second Ctrl-C abandons the run at once.

\b
Exit codes: 0 done (or already complete), 1 the run failed, 2 bad date or configuration,
3 ThetaTerminal unreachable, 130 interrupted.

\b
Examples:
  spx-data process 2024-03-15
  spx-data process 2024-03-15 --force
  spx-data process yesterday --json
"""


@click.command("process", help=HELP)
@click.argument("date")
@click.option(
    "--force",
    is_flag=True,
    help="Re-run a session that is already complete (the new one replaces it atomically).",
)
@json_option
def process(date: str, force: bool, as_json: bool) -> None:
    from spx_dagster.ops import runs
    from spx_dagster.ops.instance import open_instance

    settings = load_settings_or_fail()
    session = session_or_fail(date, settings)
    # Checked before anything is fetched: a bad directory is a configuration error, not a
    # failed publish after the whole session was downloaded.
    storage_or_fail(settings, writing=True)
    document: dict[str, Any] = {"session": session.isoformat(), "forced": force}
    instance = open_instance(settings)  # also ends the runs of CLI processes that died
    if not force:
        report = completed_report(settings, session)
        if report is not None:
            m = report.manifest
            document.update(
                status="already_complete",
                rows=m.rows,
                files=len(m.files),
                bytes=m.bytes,
                quality_score=m.quality.score,
            )
            if as_json:
                emit_json(document)
            else:
                say(
                    f"{session} is already complete ({m.rows} rows in {len(m.files)} files, "
                    "checksums verified); nothing fetched. Use --force to process it again."
                )
            return
    terminal_or_fail(settings)
    tags = runs.run_tags(trigger=TRIGGER, forced=force)
    outcome = run_with_progress(instance, session, settings=settings, tags=tags, show_progress=True)
    document.update(outcome.to_dict())
    if outcome.status == runs.INTERRUPTED:
        if as_json:
            emit_json(document)
        if outcome.manifest is not None:
            stderr_console().print(interrupted_after_publish(session, outcome.run_id, None))
        else:
            stderr_console().print(
                f"interrupted: {session} stopped (run {outcome.run_id}, category interrupted); "
                f"staged answers are kept: `spx-data process {session}` resumes from them"
            )
        sys.exit(exit_codes.INTERRUPTED)
    if not outcome.ok:
        if as_json:
            emit_json(document)
        fail(describe_failure(outcome), exit_codes.WORK_FAILED)
    catalog = refresh_catalog_or_warn(instance)
    document["catalog"] = {"refreshed": catalog.ok, "sessions": catalog.sessions}
    if catalog.interrupted:
        if as_json:
            emit_json({**document, "interrupted": True})
        stderr_console().print(interrupted_after_publish(session, outcome.run_id, catalog))
        sys.exit(exit_codes.INTERRUPTED)
    if as_json:
        emit_json(document)
        return
    for line in describe_success(outcome, settings):
        say(line)
    if catalog.ok:
        note(f"catalog refreshed: {catalog.sessions} session(s)")
