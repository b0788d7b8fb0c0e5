"""``spx-data verify``: re-hash published files against their manifests, report every mismatch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import emit_json, fail, json_option, note, say, stderr_console, warn
from spx_dagster.cli.read_options import (
    human_bytes,
    human_seconds,
    load_settings_or_fail,
    parse_range_or_fail,
    storage_or_fail,
)

HELP = """Recompute checksums of published sessions and re-check their manifests.

\b
Every listed file is re-hashed in chunks (never loaded whole) and compared with the manifest:
missing files, sizes, row counts, SHA-256, .sha256 sidecars and quarantine files. Every mismatch
is reported. Files no manifest lists (orphans: a reader globbing the dataset would see their rows)
are errors too; --remove-orphans deletes them (and leftovers of interrupted writes, which are
warnings), as the next `spx-data process` of the session would. A session being published is
checked once that publish has finished (its lock is held shared). Each result
is recorded in Dagster as the session's checksums_match check, so a corrupt session shows in
the UI and `spx-data gaps` lists it as corrupt until it is re-published or verifies clean.
Exit code 1 when any session has a problem.

\b
Examples:
  spx-data verify 2024-03-15
  spx-data verify --from 2024-01-01 --to 2024-03-31
  spx-data verify --all --json
  spx-data verify --all --remove-orphans
"""


def _sessions_to_verify(
    instance: Any,
    output_dir: Path,
    day: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
) -> list[dt.date]:
    """The one session asked for, or every session published on disk or in Dagster in range.

    A session Dagster has materialized but whose manifest is gone is verified too: it is the
    kind of damage verification exists to find.
    """
    from spx_dagster.core.storage import sessions_on_disk

    if day is not None:
        return [day]
    days = set(sessions_on_disk(output_dir)) | _materialized_sessions(instance)
    return sorted(d for d in days if (start is None or d >= start) and (end is None or d <= end))


def _materialized_sessions(instance: Any) -> set[dt.date]:
    """Sessions Dagster has published (materialized ``spx/options_parquet`` for)."""
    from spx_dagster.defs.constants import PARQUET
    from spx_dagster.defs.partitions import session_from_key

    days = set()
    for key in instance.get_materialized_partitions(PARQUET):
        try:
            days.add(session_from_key(key))
        except ValueError:
            continue
    return days


@click.command("verify", help=HELP)
@click.argument("date", required=False, metavar="[DATE]")
@click.option("--from", "from_text", metavar="D", help="First session of a range to verify.")
@click.option("--to", "to_text", metavar="D", help="Last session of a range to verify.")
@click.option("--all", "verify_everything", is_flag=True, help="Verify every published session.")
@click.option(
    "--remove-orphans",
    is_flag=True,
    help="Delete files no manifest lists (and leftovers of interrupted writes), then re-check.",
)
@json_option
def verify(
    date: str | None,
    from_text: str | None,
    to_text: str | None,
    verify_everything: bool,
    remove_orphans: bool,
    as_json: bool,
) -> None:
    chosen = sum(bool(x) for x in (date, from_text or to_text, verify_everything))
    if chosen != 1:
        fail(
            "say what to verify: one DATE, a range with --from D --to D, or --all "
            "(e.g. spx-data verify 2024-03-15)",
            exit_codes.USAGE,
        )
    day = None
    if date:
        from spx_dagster.core import calendar

        day, _ = parse_range_or_fail(date, None)
        if day is not None and not calendar.is_session(day):
            fail(calendar.describe_non_session(day), exit_codes.USAGE)
    start, end = parse_range_or_fail(from_text, to_text)
    settings = load_settings_or_fail()
    from spx_dagster.core.storage import ProblemKind, cleanup_orphans, verify_all, verify_session
    from spx_dagster.defs.session_state import new_verification_id, record_verification
    from spx_dagster.ops.instance import open_instance

    # A mistyped output directory is a configuration error, not the loss of every session.
    storage_or_fail(settings)
    output_dir = Path(settings.storage.output_dir)
    instance = open_instance()
    sessions = _sessions_to_verify(instance, output_dir, day, start, end)
    if not sessions:
        span = "anything" if verify_everything else f"{start or '...'}..{end or '...'}"
        if as_json:
            emit_json({"sessions": 0, "ok": 0, "corrupt": 0, "missing": 0, "results": []})
        else:
            say(f"nothing published to verify in {span} (under {output_dir})")
        return
    verification_id = new_verification_id()
    materialized = _materialized_sessions(instance)
    results = []
    bad = 0
    err = stderr_console()
    removable = {ProblemKind.ORPHAN_FILE, ProblemKind.TMP_LEFTOVER}
    orphans_removed = 0
    for index, report in enumerate(verify_all(output_dir, sessions), start=1):
        if remove_orphans and any(p.kind in removable for p in report.problems):
            removed = cleanup_orphans(output_dir, report.session)
            orphans_removed += len(removed)
            for path in removed:
                note(f"{report.session}: removed {path}")
            report = verify_session(output_dir, report.session)
        if report.status == "locked":
            results.append(report)  # still being published after the wait: checked next time
            if not as_json:
                _print_report(report)
            continue
        expected = (
            report.manifest is not None
            or report.status == "corrupt"
            or report.session in materialized
        )
        if expected:
            record_verification(instance, report, verification_id=verification_id)
        # A session never published, whose directories hold no file, is only "missing"; one
        # whose files a reader sees (orphans) is a problem wherever it is found.
        if any(p.kind != ProblemKind.MISSING_MANIFEST for p in report.errors) or (
            report.errors and (expected or day is not None)
        ):
            bad += 1
        results.append(report)
        if as_json:
            if len(sessions) > 1:
                err.print(f"verified {index}/{len(sessions)}: {report.session}", highlight=False)
        else:
            _print_report(report)
    missing = sum(1 for r in results if r.status == "missing")
    corrupt = sum(1 for r in results if r.status == "corrupt")
    if as_json:
        emit_json(
            {
                "sessions": len(results),
                "ok": sum(1 for r in results if r.ok),
                "corrupt": corrupt,
                "missing": missing,
                "files_checked": sum(r.files_checked for r in results),
                "bytes_checked": sum(r.bytes_checked for r in results),
                "orphans_removed": orphans_removed,
                "results": [r.to_dict() for r in results],
            }
        )
    else:
        checked = sum(r.files_checked for r in results)
        size = human_bytes(sum(r.bytes_checked for r in results))
        secs = human_seconds(sum(r.seconds for r in results))
        say(
            f"verified {len(results)} session(s), {checked} file(s), {size} in {secs}: "
            f"{len(results) - bad} ok, {corrupt} corrupt, {missing} not published"
        )
        orphans = sum(1 for r in results for p in r.problems if p.kind == ProblemKind.ORPHAN_FILE)
        if orphans_removed:
            say(f"removed {orphans_removed} file(s) no manifest listed")
        if orphans:
            scope = str(day) if day else "--all" if verify_everything else _range_flags(start, end)
            say(
                f"{orphans} file(s) no manifest lists are visible to readers; remove them with: "
                f"spx-data verify {scope} --remove-orphans"
            )
        if corrupt:
            say("re-publish a corrupt session with: spx-data process DATE --force")
    if bad:
        raise SystemExit(exit_codes.WORK_FAILED)


def _range_flags(start: dt.date | None, end: dt.date | None) -> str:
    return " ".join(
        f"{flag} {value}" for flag, value in (("--from", start), ("--to", end)) if value
    )


def _print_report(report: Any) -> None:
    if report.ok:
        extra = f", {len(report.warnings)} warning(s)" if report.warnings else ""
        say(
            f"{report.session}  ok  {report.status}: {report.files_checked} file(s), "
            f"{human_bytes(report.bytes_checked)}{extra}"
        )
    else:
        say(f"{report.session}  {report.status.upper()}: {len(report.errors)} problem(s)")
    for problem in report.problems:
        line = f"  {problem.kind.value}: {problem.path}: {problem.message}"
        if problem.is_error:
            say(line)
        else:
            warn(line.strip())
    if not report.ok and report.manifest is None and report.status == "missing":
        note(
            f"{report.session} is not published; process it with `spx-data process "
            f"{report.session}`"
        )
