"""Changing the configuration: validate first, then write the store in one transaction.

``set_value`` refuses a value that is invalid on its own or that breaks a rule together with the
other effective settings (concurrency above the tier's limit, a dataset the tier lacks, ...); a
refused value leaves the store untouched. ``reset_values`` returns keys to their defaults.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spx_dagster.core.config.load import ResolvedValue, resolve, store_for
from spx_dagster.core.config.problems import Problem
from spx_dagster.core.config.settings import (
    ConfigError,
    is_relative_path,
    key_spec,
    parse_value,
)
from spx_dagster.core.config.store import Change
from spx_dagster.core.config.validate import validate_settings
from spx_dagster.core.storage.atomic import ensure_dir

DIRECTORY_KEYS = frozenset({"storage.output_dir", "storage.temp_dir"})


class ConfigRejected(ConfigError):
    """``config set`` refused a value because of rules it breaks; nothing was stored."""

    def __init__(self, key: str, value: str, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [_reason(key, p) for p in problems]
        if len(lines) == 1:
            why, fix = lines[0]
            super().__init__(
                f"{why.rstrip('.')}; nothing was stored", key=key, value=value, fix=fix
            )
        else:
            text = "it breaks several rules (nothing was stored):" + "".join(
                f"\n  - {why.rstrip('.')}. {fix}" for why, fix in lines
            )
            super().__init__(text, key=key, value=value)


def _reason(key: str, problem: Problem) -> tuple[str, str]:
    if problem.key == key:
        return problem.why, problem.fix
    return f"it conflicts with {problem.key} = {problem.value}: {problem.why}", problem.fix


@dataclass
class SetResult:
    """What ``set_value`` did: the change (None if the value was already stored) and notes."""

    key: str
    previous: ResolvedValue
    change: Change | None
    text: str
    warnings: list[Problem] = field(default_factory=list)
    overridden_by: str | None = None  # an environment variable that still wins in this shell
    resolved_against: Path | None = None  # the directory a relative path was resolved against


@dataclass
class ResetResult:
    """What ``reset_values`` did and the problems the defaults bring back (if any)."""

    changes: list[Change]
    problems: list[Problem] = field(default_factory=list)


def set_value(
    key: str,
    value: Any,
    *,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "api",
    who: str | None = None,
    now: dt.datetime | None = None,
) -> SetResult:
    """Validate ``value`` for ``key`` against the other effective settings, then store it.

    Raises:
        UnknownKeyError: not a configuration key (the message names close matches).
        ConfigError: the value is invalid; ConfigRejected when it breaks a rule with other keys.
    """
    return set_values([(key, value)], home=home, env=env, source=source, who=who, now=now)[0]


def set_values(
    pairs: Sequence[tuple[str, Any]],
    *,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "api",
    who: str | None = None,
    now: dt.datetime | None = None,
) -> list[SetResult]:
    """Validate several ``(key, value)`` pairs together, then store them in one change.

    Together, because some rules bind two keys (``storage.output_dir`` and
    ``storage.temp_dir`` must share a filesystem): moving both one at a time is refused in
    either order. Nothing is stored unless every pair is valid.
    """
    typed: dict[str, Any] = {}
    for key, value in pairs:
        key_spec(key)
        if key in typed:
            raise ConfigError("it is given twice in one change; give each key once", key=key)
        typed[key] = parse_value(key, value)
    resolution = resolve(home, env)
    candidate = resolution.settings.with_values(typed)
    keys = list(typed)
    problems = validate_settings(candidate, keys=keys, now=now, create_dirs=False)
    texts = candidate.as_text()
    for key, value in pairs:
        errors = [p for p in problems if p.is_error and p.involves(key)]
        if errors:
            raise ConfigRejected(key, value if isinstance(value, str) else texts[key], errors)
    changes = store_for(resolution.home).set_many(typed, source=source, who=who)
    given = dict(pairs)
    results = []
    for key in keys:
        if key in DIRECTORY_KEYS:
            ensure_dir(Path(candidate.get(key)))
        previous = resolution.values[key]
        overridden = previous.env_var if previous.source.value == "environment" else None
        warnings = [p for p in problems if not p.is_error and p.involves(key)]
        relative = key in DIRECTORY_KEYS and is_relative_path(given[key])
        results.append(
            SetResult(
                key,
                previous,
                changes[key],
                texts[key],
                warnings,
                overridden,
                resolved_against=Path.cwd() if relative else None,
            )
        )
    return results


def reset_values(
    key: str | None = None,
    *,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "api",
    who: str | None = None,
) -> ResetResult:
    """Remove the stored value of ``key`` (every key when None); report what the defaults break.

    A stored key unknown to this version (left by another version) can be reset too.
    """
    before = resolve(home, env)
    if key is not None and key not in before.unknown_stored:
        key_spec(key)
    changes = store_for(before.home).reset(key, source=source, who=who)
    after = resolve(before.home, env)
    keys = None if key is None else [key]
    problems = [p for p in validate_settings(after.settings, keys=keys) if p.is_error]
    return ResetResult(changes, problems)
