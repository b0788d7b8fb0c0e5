"""Effective settings: defaults, overridden by stored values, overridden by the environment.

An environment variable ``SPX_DATA_<SECTION>__<KEY>`` (``SPX_DATA_THETADATA__BASE_URL``)
overrides the stored value for one process. ``resolve`` keeps, for every key, where its value came
from; a value that cannot be parsed is reported as a problem and the next layer down is used, so
``config get`` and ``config validate`` can still show everything else. ``load_settings`` is the
strict entry point for the pipeline: it raises on any unusable value.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from spx_dagster.core.config.home import STORE_FILENAME, spx_home
from spx_dagster.core.config.problems import Problem, Severity, problem_from_error
from spx_dagster.core.config.settings import (
    ENV_PREFIX,
    ENV_SEPARATOR,
    KEYS,
    SECTIONS,
    ConfigError,
    Settings,
    format_value,
    is_relative_path,
    parse_value,
)
from spx_dagster.core.config.store import ConfigStore, StoredValue


class Source(StrEnum):
    """Where an effective value came from."""

    DEFAULT = "default"
    STORED = "stored"
    ENVIRONMENT = "environment"


@dataclass(frozen=True)
class ResolvedValue:
    """A key's effective value, its text form and where it came from."""

    key: str
    value: Any
    text: str
    source: Source
    env_var: str
    stored: StoredValue | None

    @property
    def source_label(self) -> str:
        """``default``, ``stored (version N)`` or ``environment (SPX_DATA_...)``."""
        if self.source is Source.ENVIRONMENT:
            return f"environment ({self.env_var})"
        if self.source is Source.STORED and self.stored is not None:
            return f"stored (version {self.stored.version})"
        return self.source.value


@dataclass
class Resolution:
    """The effective settings with every value's origin and the problems met on the way."""

    home: Path
    settings: Settings
    values: dict[str, ResolvedValue]
    problems: list[Problem] = field(default_factory=list)
    unknown_stored: dict[str, StoredValue] = field(default_factory=dict)


def store_for(home: Path) -> ConfigStore:
    """The config store of ``home``."""
    return ConfigStore(Path(home) / STORE_FILENAME)


def env_overrides(env: Mapping[str, str]) -> tuple[dict[str, tuple[str, str]], list[Problem]]:
    """Known keys set in ``env`` (key -> (variable, text)), and warnings for unknown variables."""
    by_var = {spec.env_var: key for key, spec in KEYS.items()}
    found: dict[str, tuple[str, str]] = {}
    problems = []
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or ENV_SEPARATOR not in var:
            continue
        key = by_var.get(var)
        if key is not None:
            found[key] = (var, text)
            continue
        close = difflib.get_close_matches(var, list(by_var), n=1, cutoff=0.6)
        problems.append(
            Problem(
                key=var,
                value=text,
                why="this environment variable is not a setting and is ignored",
                fix=f"Did you mean {close[0]}?" if close else "See the keys: spx-data config list",
                severity=Severity.WARNING,
                source="environment",
            )
        )
    return found, problems


def resolve(home: Path | None = None, env: Mapping[str, str] | None = None) -> Resolution:
    """Every key's effective value and origin; unusable values become problems, never crashes."""
    env = os.environ if env is None else env
    home = spx_home(env) if home is None else Path(home)
    stored = store_for(home).list()
    overrides, problems = env_overrides(env)

    chosen: dict[str, tuple[Any, Source]] = {}
    for key in KEYS:
        chosen[key] = (_default(key), Source.DEFAULT)
        layers: list[tuple[str, str, Source]] = []
        if key in overrides:
            var, text = overrides[key]
            layers.append((text, var, Source.ENVIRONMENT))
        if key in stored:
            layers.append((stored[key].value, "the config store", Source.STORED))
        for text, origin, source in layers:
            try:
                chosen[key] = (parse_value(key, text), source)
            except ConfigError as error:
                problems.append(problem_from_error(error, source=origin))
                continue
            directory = KEYS[key].kind == "directory"
            if source is Source.ENVIRONMENT and directory and is_relative_path(text):
                problems.append(_relative_directory(key, text, origin))
            break

    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, (value, _) in chosen.items():
        sections[KEYS[key].section][KEYS[key].name] = value
    settings = Settings.model_validate({"home": home, **sections})

    values = {
        key: ResolvedValue(
            key=key,
            value=settings.get(key),
            text=format_value(key, settings.get(key)),
            source=source,
            env_var=KEYS[key].env_var,
            stored=stored.get(key),
        )
        for key, (_, source) in chosen.items()
    }
    unknown = {key: value for key, value in stored.items() if key not in KEYS}
    problems.extend(
        Problem(
            key=key,
            value=value.value,
            why="this stored key is not known to this version of spx-data; it is kept but unused",
            fix=f"Remove it with: spx-data config reset {key}",
            severity=Severity.WARNING,
            source="the config store",
        )
        for key, value in unknown.items()
    )
    return Resolution(home, settings, values, problems, unknown)


def _relative_directory(key: str, text: str, var: str) -> Problem:
    """A relative directory in the environment means another one in each working directory."""
    here = Path.cwd()
    return Problem(
        key=key,
        value=text,
        why=f"it is relative, so each process resolves it against its own working directory "
        f"(here: {here / text}); the daemon and run workers may start elsewhere",
        fix=f"Give an absolute path: export {var}={here / text}",
        severity=Severity.WARNING,
        source=f"environment ({var})",
    )


def _default(key: str) -> Any:
    spec = KEYS[key]
    return SECTIONS[spec.section].model_fields[spec.name].default


def load_settings(home: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """The effective settings: defaults ← stored ← ``SPX_DATA_<SECTION>__<KEY>``.

    Raises:
        ConfigError: a stored or environment value cannot be used (the message names the key,
            the value, where it came from, why and an example).
    """
    resolution = resolve(home, env)
    errors = [p for p in resolution.problems if p.is_error]
    if errors:
        first = errors[0]
        more = f" ({len(errors) - 1} more: run spx-data config validate)" if len(errors) > 1 else ""
        raise ConfigError(
            f"{first.why} (from {first.source})",
            key=first.key,
            value=first.value,
            fix=first.fix + more,
        )
    return resolution.settings
