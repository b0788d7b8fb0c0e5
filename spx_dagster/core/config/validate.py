"""Validation with guidance: checks that need the calendar, the filesystem or several keys.

Single values are parsed by the settings model; here we check what a value means in context:
the URL's host (127.0.0.1 vs localhost) and port against the API version, the start date against
the trading calendar and the tier's history, the directories on disk, and cross-field rules
(temp dir on the output dir's filesystem, concurrency within the tier, datasets the tier and the
API version can serve). Every finding says which key, which value, why, and what to do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from spx_dagster.core import calendar
from spx_dagster.core.config.load import resolve
from spx_dagster.core.config.problems import Problem, Severity, example_command, set_command
from spx_dagster.core.config.settings import Settings, format_value
from spx_dagster.core.storage.atomic import ensure_dir
from spx_dagster.core.storage.disk import GB, free_bytes
from spx_dagster.core.storage.layout import TMP_PREFIX
from spx_dagster.core.thetadata import vendor

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Context:
    """What a check may use besides the settings."""

    now: dt.datetime | None
    create_dirs: bool


Check = Callable[[Settings, Context], Iterable[Problem]]


def _text(settings: Settings, key: str) -> str:
    return format_value(key, settings.get(key))


# ---------------------------------------------------------------------------------------------
# ThetaTerminal address
# ---------------------------------------------------------------------------------------------
def check_base_url(settings: Settings, ctx: Context) -> Iterable[Problem]:
    key = "thetadata.base_url"
    url = settings.thetadata.base_url
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    if host == "localhost":
        yield Problem(
            key,
            url,
            "ThetaTerminal tells 'localhost' and '127.0.0.1' apart: once reached through one, "
            "requests through the other fail with status 476 (WRONG_IP)",
            "Use the same host everywhere the terminal is reached; 127.0.0.1 is the default. "
            + example_command(key, url.replace("localhost", "127.0.0.1", 1)),
            Severity.WARNING,
        )
    if host not in LOOPBACK_NAMES and not host.startswith("127."):
        yield Problem(
            key,
            url,
            f"{host} is not this machine; ThetaTerminal normally runs beside spx-data",
            "Fine if the terminal really runs there and accepts remote connections.",
            Severity.WARNING,
        )
    version = settings.thetadata.api_version
    other = "v2" if version == "v3" else "v3"
    default_port = {"v3": 25503, "v2": 25510}
    if port == default_port[other]:
        yield Problem(
            key,
            url,
            f"port {port} is the {other} terminal's default but thetadata.api_version is "
            f"{version} (the {version} terminal listens on {default_port[version]})",
            f"Set the API version the terminal speaks: spx-data config set "
            f"thetadata.api_version {other}, or use port {default_port[version]}.",
            Severity.WARNING,
            related=("thetadata.api_version",),
        )


# A quick look, not the wait `process` does: `config validate` answers in about a second.
TERMINAL_PROBE_CONNECT_S = 1.0
TERMINAL_PROBE_READ_S = 2.0
SKIP_PROBE_HINT = "`spx-data config validate --offline` skips this check"


def check_terminal(settings: Settings) -> list[Problem]:
    """Warn when nothing usable answers at ``thetadata.base_url``.

    A warning, not an error: the settings may be right and the terminal merely not started yet.
    Not in ``CHECKS`` because it touches the network; ``config validate`` runs it unless told
    ``--offline``.
    """
    from spx_dagster.core.thetadata.errors import TerminalUnreachable
    from spx_dagster.core.thetadata.health import HealthState, probe_terminal

    key = "thetadata.base_url"
    url = settings.thetadata.base_url
    version = settings.thetadata.api_version
    health = probe_terminal(
        url,
        api_version=version,
        connect_timeout_s=min(TERMINAL_PROBE_CONNECT_S, settings.thetadata.connect_timeout_s),
        timeout_s=TERMINAL_PROBE_READ_S,
    )
    if health.state is HealthState.READY:
        return [Problem(key, url, f"{health.detail} ({health.url})", "", Severity.NOTE)]
    if health.state is HealthState.UNREACHABLE:
        advice = TerminalUnreachable.at(url, api_version=version).advice
        why = f"no ThetaTerminal is listening there ({health.url} was not answered)"
        fix = f"{advice[0].upper()}{advice[1:]}; {SKIP_PROBE_HINT}."
    else:
        why, fix = health.detail, f"{SKIP_PROBE_HINT[0].upper()}{SKIP_PROBE_HINT[1:]}."
    related = ("thetadata.api_version",) if health.state is HealthState.WRONG_API_VERSION else ()
    return [Problem(key, url, why, fix, Severity.WARNING, related=related)]


# ---------------------------------------------------------------------------------------------
# Start date
# ---------------------------------------------------------------------------------------------
def check_start_date(settings: Settings, ctx: Context) -> Iterable[Problem]:
    key = "processing.start_date"
    day = settings.processing.start_date
    tier = settings.thetadata.subscription_tier
    history_start = vendor.TIER_HISTORY_START[tier]
    first_available = calendar.next_session(history_start - dt.timedelta(days=1))
    latest = calendar.latest_closed_session(ctx.now)
    if day > latest:
        yield Problem(
            key,
            day.isoformat(),
            f"{day} is in the future or has not closed yet; the latest closed session is {latest}",
            example_command(key, first_available or latest),
        )
        return
    if not calendar.is_session(day):
        nearest = calendar.next_session(day) or calendar.previous_session(day)
        yield Problem(
            key,
            day.isoformat(),
            calendar.describe_non_session(day),
            example_command(key, nearest),
        )
        return
    if day < history_start:
        yield Problem(
            key,
            day.isoformat(),
            f"it is before the {tier.value} subscription's history, which starts "
            f"{history_start}; earlier sessions cannot be fetched",
            f"Start at the first session with data ({set_command(key, first_available)}) "
            "or, with a deeper subscription, set thetadata.subscription_tier.",
            related=("thetadata.subscription_tier",),
        )


# ---------------------------------------------------------------------------------------------
# Directories
# ---------------------------------------------------------------------------------------------
def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _writable(directory: Path) -> str | None:
    """None if a file can be created in ``directory``, else the reason."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=f"{TMP_PREFIX}write-check-"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _check_directory(key: str, path: Path, ctx: Context) -> Iterable[Problem]:
    value = str(path)
    example = example_command(key, Path.home() / "spx-data" / path.name)
    if path.exists() and not path.is_dir():
        yield Problem(key, value, "it exists but is not a directory", example)
        return
    if not path.exists():
        if ctx.create_dirs:
            try:
                ensure_dir(path)
            except OSError as exc:
                yield Problem(key, value, f"it cannot be created ({exc.strerror})", example)
                return
            yield Problem(key, value, "it did not exist and was created", "", Severity.NOTE)
        else:
            ancestor = nearest_existing(path)
            if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
                yield Problem(
                    key,
                    value,
                    f"it does not exist and cannot be created: {ancestor} is not a writable "
                    "directory",
                    example,
                )
            return
    reason = _writable(path)
    if reason is not None:
        yield Problem(key, value, f"it is not writable ({reason})", example)


def check_output_dir(settings: Settings, ctx: Context) -> Iterable[Problem]:
    yield from _check_directory("storage.output_dir", settings.storage.output_dir, ctx)


def check_temp_dir(settings: Settings, ctx: Context) -> Iterable[Problem]:
    yield from _check_directory("storage.temp_dir", settings.storage.temp_dir, ctx)


def check_free_space(settings: Settings, ctx: Context) -> Iterable[Problem]:
    key = "storage.output_dir"
    output = settings.storage.output_dir
    min_free_gb = settings.storage.min_free_gb
    free = free_bytes(output)
    if free < min_free_gb * GB:
        yield Problem(
            key,
            str(output),
            f"its filesystem has {free / GB:.1f} GB free, less than storage.min_free_gb "
            f"({min_free_gb:g} GB) that must stay free",
            "Free some space, move the data to a larger disk, or lower the reserve: "
            + example_command("storage.min_free_gb", f"{max(0.0, free / GB / 2):.1f}"),
            related=("storage.min_free_gb",),
        )


def check_same_filesystem(settings: Settings, ctx: Context) -> Iterable[Problem]:
    key = "storage.temp_dir"
    output, temp = settings.storage.output_dir, settings.storage.temp_dir
    if output == temp:
        yield Problem(
            key,
            str(temp),
            "it is the same directory as storage.output_dir; temporary stages would mix with "
            "published data",
            example_command(key, output.parent / f"{output.name}-tmp"),
            related=("storage.output_dir",),
        )
        return
    output_dev = nearest_existing(output).stat().st_dev
    if nearest_existing(temp).stat().st_dev != output_dev:
        sibling = output.parent / f"{output.name}-tmp"
        on_same = nearest_existing(sibling).stat().st_dev == output_dev
        suggestion = sibling if on_same else output / ".tmp"
        yield Problem(
            key,
            str(temp),
            f"it is on another filesystem than storage.output_dir ({output}), so publishing "
            "could not be an atomic rename",
            # Both keys in one `config set`: moving them one at a time is refused either way.
            f"Example: spx-data config set storage.output_dir {output} {key} {suggestion}",
            related=("storage.output_dir",),
        )


# ---------------------------------------------------------------------------------------------
# Subscription: concurrency and datasets
# ---------------------------------------------------------------------------------------------
def check_concurrency(settings: Settings, ctx: Context) -> Iterable[Problem]:
    key = "thetadata.concurrency"
    configured = settings.thetadata.concurrency
    tier = settings.thetadata.subscription_tier
    limit = settings.tier_concurrency
    if configured is not None and configured > limit:
        yield Problem(
            key,
            str(configured),
            f"the {tier.value} tier serves {limit} concurrent request(s); more only queue in the "
            "terminal and end in 429 answers",
            f"Use the tier's limit ({set_command(key, 'none')}) or a lower number, or set "
            "thetadata.subscription_tier to your real subscription.",
            related=("thetadata.subscription_tier",),
        )


def check_datasets(settings: Settings, ctx: Context) -> Iterable[Problem]:
    key = "processing.datasets"
    datasets = settings.processing.datasets
    tier = settings.thetadata.subscription_tier
    version = settings.thetadata.api_version
    value = ",".join(datasets)
    locked = [d for d in datasets if not vendor.tier_allows(tier, vendor.ENDPOINTS[d].tier)]
    if locked:
        allowed = [d for d in datasets if d not in locked] or [
            d for d, e in vendor.ENDPOINTS.items() if vendor.tier_allows(tier, e.tier)
        ]
        needs = ", ".join(f"{d} needs {vendor.ENDPOINTS[d].tier.value}" for d in locked)
        yield Problem(
            key,
            value,
            f"the {tier.value} tier does not include {', '.join(locked)} ({needs} or higher); "
            "the terminal would answer 471 (no permission)",
            f"Drop them ({set_command(key, ','.join(allowed))}) or set "
            "thetadata.subscription_tier to your real subscription.",
            related=("thetadata.subscription_tier",),
        )
    v3_only = [d for d in datasets if version == "v2" and vendor.ENDPOINTS[d].v2_path is None]
    if v3_only:
        rest = [d for d in datasets if d not in v3_only] or ["eod"]
        yield Problem(
            key,
            value,
            f"{', '.join(v3_only)} is served only by ThetaTerminal v3, and "
            "thetadata.api_version is v2",
            f"Use a v3 terminal (spx-data config set thetadata.api_version v3) or drop it "
            f"({set_command(key, ','.join(rest))}).",
            related=("thetadata.api_version",),
        )


# Each check with the keys whose values it reads: `config set KEY` runs only the checks that
# involve KEY (so setting a timeout does not load the trading calendar).
CHECKS: tuple[tuple[frozenset[str], Check], ...] = (
    (frozenset({"thetadata.base_url", "thetadata.api_version"}), check_base_url),
    (frozenset({"thetadata.concurrency", "thetadata.subscription_tier"}), check_concurrency),
    (
        frozenset({"processing.start_date", "thetadata.subscription_tier"}),
        check_start_date,
    ),
    (
        frozenset({"processing.datasets", "thetadata.subscription_tier", "thetadata.api_version"}),
        check_datasets,
    ),
    (frozenset({"storage.output_dir"}), check_output_dir),
    (frozenset({"storage.temp_dir"}), check_temp_dir),
    (frozenset({"storage.output_dir", "storage.min_free_gb"}), check_free_space),
    (frozenset({"storage.output_dir", "storage.temp_dir"}), check_same_filesystem),
)


def validate_settings(
    settings: Settings,
    *,
    keys: Iterable[str] | None = None,
    now: dt.datetime | None = None,
    create_dirs: bool = False,
) -> list[Problem]:
    """Every problem of ``settings`` at once (errors, warnings, notes), in check order.

    Args:
        settings: The settings to check.
        keys: Only run the checks that read one of these keys (default: all checks).
        now: The clock for "not in the future" (default: now in New York).
        create_dirs: Create missing directories (``config validate``) instead of only checking
            that they could be created (``config set``).
    """
    wanted = None if keys is None else set(keys)
    ctx = Context(now=now, create_dirs=create_dirs)
    problems: list[Problem] = []
    for involved, check in CHECKS:
        if wanted is None or involved & wanted:
            problems.extend(check(settings, ctx))
    return problems


def check_configuration(
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    now: dt.datetime | None = None,
    create_dirs: bool = True,
    probe_terminal: bool = False,
) -> list[Problem]:
    """Everything ``config validate`` reports: unusable stored/environment values, unknown
    keys and variables, and every check on the effective settings, each with its source.

    With ``probe_terminal``, also whether a terminal answers at ``thetadata.base_url``
    (:func:`check_terminal`).
    """
    resolution = resolve(home, env)
    problems = list(resolution.problems)
    found = validate_settings(resolution.settings, now=now, create_dirs=create_dirs)
    if probe_terminal:
        found.extend(check_terminal(resolution.settings))
    for problem in found:
        origin = resolution.values.get(problem.key)
        source = origin.source_label if origin is not None else None
        problems.append(dataclasses.replace(problem, source=source))
    return problems
