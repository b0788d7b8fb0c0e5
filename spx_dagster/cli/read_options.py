"""Pieces the read commands (status, list, gaps, verify, errors, perf) share.

``--from``/``--to`` parsing with friendly errors, settings loading and the storage check that exit 2
with the config problem, and human formatting of sizes, durations and times.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable
from typing import Any, TypeVar

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import fail
from spx_dagster.core.units import human_bytes, human_seconds  # noqa: F401 (commands use them)

F = TypeVar("F", bound=Callable[..., Any])


def range_options(func: F) -> F:
    """``--from D`` and ``--to D`` (passed as ``from_text`` and ``to_text``)."""
    func = click.option(
        "--to",
        "to_text",
        metavar="D",
        help="Last session (YYYY-MM-DD; default: the latest closed session).",
    )(func)
    return click.option(
        "--from",
        "from_text",
        metavar="D",
        help="First session (YYYY-MM-DD; default: processing.start_date).",
    )(func)


def imports_done() -> None:
    """Move everything imported so far out of the garbage collector's sight.

    Dagster and pandas leave hundreds of thousands of long-lived objects; without this, every
    full collection triggered while thousands of session records are built rescans them all
    (a third of the time of ``gaps`` over 2012→today).
    """
    gc.freeze()


def load_settings_or_fail() -> Any:
    """The effective settings; a configuration problem exits 2 with the key and the fix."""
    from spx_dagster.core.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as error:
        fail(f"the configuration cannot be used: {error}", exit_codes.USAGE)


def storage_or_fail(settings: Any, *, writing: bool = False) -> None:
    """Exit 2 unless the configured storage can be used (``core.config.storage_access``): the
    same check and the same sentence for every command that reads or publishes sessions."""
    from spx_dagster.core.config.storage_access import storage_error_message, storage_problems

    problems = storage_problems(settings, writing=writing)
    if problems:
        fail(storage_error_message(problems), exit_codes.USAGE)


def parse_range_or_fail(
    from_text: str | None, to_text: str | None
) -> tuple[dt.date | None, dt.date | None]:
    """The parsed ``--from``/``--to`` (None when not given); a bad date exits 2."""
    from spx_dagster.core.calendar import DateError, parse_date

    try:
        start = parse_date(from_text) if from_text else None
        end = parse_date(to_text) if to_text else None
    except DateError as error:
        fail(str(error), exit_codes.USAGE)
    if start and end and start > end:
        fail(
            f"--from {start} comes after --to {end}: the range is reversed; "
            f"did you mean --from {end} --to {start}?",
            exit_codes.USAGE,
        )
    return start, end


def human_time(stamp: float | dt.datetime | None) -> str:
    """A moment in the exchange's time zone, e.g. ``2024-03-15 18:31 ET``."""
    from spx_dagster.core.calendar import ET

    if stamp is None:
        return "-"
    moment = stamp if isinstance(stamp, dt.datetime) else dt.datetime.fromtimestamp(stamp, dt.UTC)
    return moment.astimezone(ET).strftime("%Y-%m-%d %H:%M ET")


def human_quality(score: float | None) -> str:
    return "-" if score is None else f"{score:.3f}"
