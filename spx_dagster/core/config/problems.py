"""One finding about the configuration: which key, which value, why, and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spx_dagster.core.config.settings import ConfigError


class Severity(StrEnum):
    """Errors make the configuration invalid; warnings and notes do not."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Problem:
    """A finding about ``key`` (and ``related`` keys in cross-field rules).

    ``fix`` says what to do, usually as a ``spx-data config set`` command with a valid value;
    ``source`` says where the value came from (default, stored or the environment variable).
    """

    key: str
    value: str
    why: str
    fix: str
    severity: Severity = Severity.ERROR
    related: tuple[str, ...] = ()
    source: str | None = None
    example: str | None = field(default=None, compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the finding involves (its own first)."""
        return (self.key, *self.related)

    def involves(self, key: str) -> bool:
        return key in self.keys

    def message(self) -> str:
        """One line: ``key = value: why. fix``."""
        origin = f" (from {self.source})" if self.source else ""
        text = f"{self.key} = {self.value}{origin}: {self.why.rstrip('.')}."
        return f"{text} {self.fix}" if self.fix else text

    def to_error(self) -> ConfigError:
        """This finding as the exception ``config set`` raises."""
        return ConfigError(self.why, key=self.key, value=self.value, fix=self.fix)

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "key": self.key,
            "value": self.value,
            "source": self.source,
            "why": self.why,
            "fix": self.fix,
            "related": list(self.related),
            "message": self.message(),
        }


def set_command(key: str, value: object) -> str:
    """``spx-data config set KEY VALUE``."""
    return f"spx-data config set {key} {value}"


def example_command(key: str, value: object) -> str:
    """The fix as a sentence: ``Example: spx-data config set KEY VALUE``."""
    return f"Example: {set_command(key, value)}"


def problem_from_error(error: ConfigError, *, source: str | None = None) -> Problem:
    """A parse failure (ConfigError from ``parse_value``) as a finding."""
    return Problem(
        key=error.key or "",
        value=str(error.value) if error.value is not None else "",
        why=error.why,
        fix=error.fix,
        source=source,
        example=error.example,
    )
