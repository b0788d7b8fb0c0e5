"""``spx-data config``: show, change, validate and reset the persisted configuration.

Thin over ``spx_dagster.core.config``. The core package is imported inside each command so that
``spx-data config --help`` stays instant; nothing here imports Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from spx_dagster.cli import exit_codes
from spx_dagster.cli.output import (
    emit_json,
    fail,
    json_option,
    note,
    print_table,
    say,
    stdout_console,
    warn,
)

if TYPE_CHECKING:
    from spx_dagster.core.config import Problem, Resolution

SOURCE_CLI = "cli"

GROUP_HELP = """Show, change, validate and reset the persisted configuration.

Values live in $SPX_DATA_HOME/config.sqlite3 (default ~/.spx-data) with a history of every
change. An environment variable SPX_DATA_<SECTION>__<KEY> (e.g. SPX_DATA_THETADATA__BASE_URL)
overrides the stored value for one process.

\b
Example:
  spx-data config set thetadata.base_url http://127.0.0.1:25503
  spx-data config get
  spx-data config validate
"""


@click.group(help=GROUP_HELP, context_settings={"help_option_names": ["-h", "--help"]})
def config() -> None:
    """See GROUP_HELP."""


def _guarded(action: Any) -> Any:
    """Run ``action``; configuration errors exit 2 with their guidance."""
    from spx_dagster.core.config import ConfigError

    try:
        return action()
    except ConfigError as error:
        fail(str(error), exit_codes.USAGE)


def _warn_unusable(resolution: Resolution, keys: list[str] | None = None) -> None:
    """Stored or environment values that could not be used (the next layer applies)."""
    for problem in resolution.problems:
        if problem.is_error and (keys is None or problem.key in keys):
            warn(f"{problem.message()} (ignored: the next value down applies)")


# ---------------------------------------------------------------------------------------------
# set
# ---------------------------------------------------------------------------------------------
@config.command(
    "set",
    context_settings={"ignore_unknown_options": True},  # a negative VALUE is not an option
    help="""Validate VALUE for KEY and store it (exit 2 with guidance if it is invalid).

Several KEY VALUE pairs are validated together and stored in one change, so that keys bound by
a rule (storage.output_dir and storage.temp_dir must share a filesystem) move at once. An
invalid value, or one that breaks a rule with the other settings (concurrency above the tier's
limit, a dataset the tier does not include, ...), changes nothing.

\b
Example:
  spx-data config set thetadata.base_url http://127.0.0.1:25503
  spx-data config set processing.datasets greeks,eod,open_interest,quote
  spx-data config set thetadata.concurrency none
  spx-data config set storage.output_dir /mnt/big/spx storage.temp_dir /mnt/big/spx-tmp
""",
)
@click.argument("pairs", nargs=-1, type=click.UNPROCESSED, metavar="KEY VALUE [KEY VALUE ...]")
def set_command(pairs: tuple[str, ...]) -> None:
    from spx_dagster.core.config import set_values

    if not pairs or len(pairs) % 2:
        fail(
            f"expected KEY VALUE pairs, got {len(pairs)} word(s) ({' '.join(pairs) or 'none'}): "
            "e.g. `spx-data config set quality.min_score 0.9`",
            exit_codes.USAGE,
        )
    given = list(zip(pairs[::2], pairs[1::2], strict=True))
    results = _guarded(lambda: set_values(given, source=SOURCE_CLI))
    for (_, raw), result in zip(given, results, strict=True):
        _report_set(result, raw)


def _report_set(result: Any, raw: str) -> None:
    import shlex
    from pathlib import Path

    from spx_dagster.core.storage import manifest_sessions

    key = result.key
    previous = f"{result.previous.text} ({result.previous.source_label})"
    if result.change is None:
        say(f"{key} is already stored as {result.text}; nothing changed")
    else:
        say(f"{key}: {previous} → {result.text} (stored, version {result.change.version})")
    if result.resolved_against is not None and result.change is not None:
        note(
            f"{raw.strip()!r} is relative: stored as {result.text} (from {result.resolved_against})"
        )
    if key == "storage.output_dir" and result.change is not None:
        old, new = Path(result.previous.text), Path(result.text)
        published = len(manifest_sessions(old))
        if published:
            # Quoted so that the command can be pasted as is, spaces in the paths included.
            source, target = shlex.quote(str(old)), shlex.quote(str(new))
            warn(
                f"{published} published session(s) stay in {old}; spx-data now reads {new}, "
                f"where they count as missing. Move them with `mv {source}/* {target}/`, or go "
                f"back with `spx-data config set storage.output_dir {source}`"
            )
    for problem in result.warnings:
        warn(problem.message())
    if result.overridden_by:
        warn(
            f"{result.overridden_by} is set in this environment and overrides the stored value "
            "for every process that inherits it; unset it to use the stored value"
        )


# ---------------------------------------------------------------------------------------------
# get
# ---------------------------------------------------------------------------------------------
@config.command(
    "get",
    help="""Show the effective value of KEY (or of every key) and where it comes from.

The source is `default`, `stored (version N)` or `environment (SPX_DATA_...)`.

\b
Example:
  spx-data config get thetadata.base_url
  spx-data config get --json | jq -r '."storage.output_dir".value'
""",
)
@click.argument("key", required=False)
@json_option
def get_command(key: str | None, as_json: bool) -> None:
    from spx_dagster.core.config import key_spec, resolve

    if key is not None:
        _guarded(lambda: key_spec(key))
    resolution = _guarded(resolve)
    keys = [key] if key is not None else list(resolution.values)
    _warn_unusable(resolution, keys)
    values = [resolution.values[k] for k in keys]
    if as_json:
        documents = {v.key: _value_json(v) for v in values}
        emit_json(documents[key] if key is not None else documents)
        return
    if key is not None:
        value = values[0]
        say(f"{value.key} = {value.text}  ({value.source_label})")
        return
    print_table(
        ["key", "value", "source"],
        [(v.key, v.text, v.source_label) for v in values],
        no_wrap=["key"],
    )


def _value_json(value: Any) -> dict[str, Any]:
    from spx_dagster.core.config import json_value

    return {
        "key": value.key,
        "value": json_value(value.key, value.value),
        "text": value.text,
        "source": value.source.value,
        "env_var": value.env_var,
        "stored_version": value.stored.version if value.stored else None,
    }


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------
@config.command(
    "list",
    help="""List every key with its value, source, default and what it does.

\b
Example:
  spx-data config list
  spx-data config list --json
""",
)
@json_option
def list_command(as_json: bool) -> None:
    from spx_dagster.core.config import describe_keys, resolve

    resolution = _guarded(resolve)
    _warn_unusable(resolution)
    specs = describe_keys()
    if as_json:
        emit_json(
            {
                "home": str(resolution.home),
                "keys": [
                    {
                        **_value_json(resolution.values[spec.key]),
                        "kind": spec.kind,
                        "default": spec.default,
                        "description": spec.description,
                        "example": spec.example,
                        "range": spec.range or None,
                    }
                    for spec in specs
                ],
                "unknown_stored": {k: v.value for k, v in resolution.unknown_stored.items()},
            }
        )
        return
    rows = []
    for spec in specs:
        value = resolution.values[spec.key]
        allowed = f" Allowed: {spec.range}." if spec.range else ""
        rows.append(
            (spec.key, value.text, value.source_label, spec.default, spec.description + allowed)
        )
    print_table(
        ["key", "value", "source", "default", "description"],
        rows,
        title=f"configuration in {resolution.home}",
        no_wrap=["key"],
    )
    for key, stored in resolution.unknown_stored.items():
        warn(f"stored key {key} = {stored.value} is unknown to this version (kept, unused)")


# ---------------------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------------------
@config.command(
    "validate",
    help="""Check the effective configuration and report every problem at once.

Checks the ThetaTerminal URL, the start date against the trading calendar and your tier's
history, the directories (created if missing, writable, enough free space) and the rules
between keys, then asks thetadata.base_url whether a terminal answers (about a second; a
warning if none does, skipped with --offline). Exits 2 if there is any error; warnings do not
fail.

\b
Example:
  spx-data config validate
  spx-data config validate --offline --json
""",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Do not contact thetadata.base_url (check the settings only).",
)
@json_option
def validate_command(offline: bool, as_json: bool) -> None:
    from spx_dagster.core.config import Severity, check_configuration, spx_home, store_path

    problems = _guarded(lambda: check_configuration(probe_terminal=not offline))
    errors = [p for p in problems if p.severity is Severity.ERROR]
    warnings = [p for p in problems if p.severity is Severity.WARNING]
    if as_json:
        emit_json(
            {
                "valid": not errors,
                "home": str(spx_home()),
                "store": str(store_path()),
                "errors": len(errors),
                "warnings": len(warnings),
                "problems": [p.as_dict() for p in problems],
            }
        )
    else:
        _print_problems(problems)
        summary = f"{len(errors)} error(s), {len(warnings)} warning(s)"
        if errors:
            say(f"configuration is NOT valid: {summary}")
        else:
            say(f"configuration is valid ({summary})")
    if errors:
        raise SystemExit(exit_codes.USAGE)


def _print_problems(problems: list[Problem]) -> None:
    from rich.text import Text

    styles = {"error": "bold red", "warning": "yellow", "note": "cyan"}
    console = stdout_console()
    for problem in problems:
        line = Text(f"{problem.severity.value:<8}", style=styles[problem.severity.value])
        line.append(problem.message())
        console.print(line, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# reset
# ---------------------------------------------------------------------------------------------
@config.command(
    "reset",
    help="""Remove the stored value of KEY (or of every key with --all): the default applies.

The reset is recorded in the history like any other change.

\b
Example:
  spx-data config reset thetadata.concurrency
  spx-data config reset --all
""",
)
@click.argument("key", required=False)
@click.option("--all", "reset_all", is_flag=True, help="Reset every stored key.")
def reset_command(key: str | None, reset_all: bool) -> None:
    from spx_dagster.core.config import reset_values

    if (key is None) == (not reset_all):
        fail("give exactly one of KEY or --all, e.g. spx-data config reset thetadata.concurrency")
    result = _guarded(lambda: reset_values(None if reset_all else key, source=SOURCE_CLI))
    if not result.changes:
        say(
            "nothing was stored; every default already applies"
            if reset_all
            else f"{key} was not stored; the default already applies"
        )
    for change in result.changes:
        say(f"{change.key}: removed {change.old_value} (version {change.version}); default applies")
    for problem in result.problems:
        warn(problem.message())
    if result.problems:
        note("run spx-data config validate to see every problem")


# ---------------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------------
@config.command(
    "history",
    help="""Show every accepted change (of KEY, or of all keys), oldest first.

Each change has the key's version, the old and new value, when (UTC), who and from where.

\b
Example:
  spx-data config history thetadata.base_url
  spx-data config history --limit 20 --json
""",
)
@click.argument("key", required=False)
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N changes.")
@json_option
def history_command(key: str | None, limit: int | None, as_json: bool) -> None:
    from spx_dagster.core.config import KEYS, key_spec
    from spx_dagster.core.config.load import store_for

    def changes() -> list[Any]:
        from spx_dagster.core.config import spx_home

        found = store_for(spx_home()).history(key, limit=limit)
        if key is not None and key not in KEYS and not found:
            key_spec(key)  # raises UnknownKeyError naming close matches
        return found

    found = _guarded(changes)
    if as_json:
        emit_json({"key": key, "changes": [c.as_dict() for c in found]})
        return
    if not found:
        say(f"no changes recorded{f' for {key}' if key else ''}: defaults apply")
        return
    print_table(
        ["#", "when (UTC)", "key", "version", "action", "old", "new", "who", "source"],
        [
            (
                c.id,
                c.changed_at,
                c.key,
                c.version,
                c.action,
                "-" if c.old_value is None else c.old_value,
                "-" if c.new_value is None else c.new_value,
                c.changed_by,
                c.source,
            )
            for c in found
        ],
        no_wrap=["when (UTC)", "key"],
    )
