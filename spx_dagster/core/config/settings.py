"""The settings model: the one place that knows every key, its type, default, text form and doc.

Keys are dotted ``<section>.<name>`` (``thetadata.base_url``). Values travel as text (the CLI,
the environment, the store) and are parsed here by the field's own validators, so a value is
checked the same way wherever it comes from. Checks that need the outside world (the calendar,
the filesystem) or several keys at once live in ``validate.py``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import os
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from spx_dagster.core.calendar import parse_date
from spx_dagster.core.config.home import (
    default_output_dir,
    default_temp_dir,
    expand_path,
    spx_home,
)
from spx_dagster.core.datasets import DEFAULT_DATASETS
from spx_dagster.core.storage.location import local_path
from spx_dagster.core.thetadata import vendor
from spx_dagster.core.thetadata.vendor import Tier

ENV_PREFIX = "SPX_DATA_"
ENV_SEPARATOR = "__"
# Words that mean "not set" for optional keys (`config set thetadata.concurrency auto`).
NONE_WORDS = frozenset({"", "none", "null", "auto"})


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names key, value, why and a fix."""

    def __init__(
        self,
        why: str,
        *,
        key: str | None = None,
        value: object = None,
        example: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.why, self.key, self.value, self.example = why, key, value, example
        self.fix = fix or (f"Example: spx-data config set {key} {example}" if example else "")
        subject = f"{key} = {value!r}: " if key is not None and value is not None else ""
        subject = subject or (f"{key}: " if key is not None else "")
        text = f"{subject}{why}"
        if self.fix:
            text = f"{text.rstrip('.')}. {self.fix}"
        super().__init__(text)


class UnknownKeyError(ConfigError):
    """A key the settings model does not know; the message names the closest known keys."""

    def __init__(self, key: str, known: list[str]) -> None:
        name = key.rsplit(".", 1)[-1]
        same_name = [k for k in known if k.endswith(f".{name}") and k != key]
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.75)
        self.suggestions = list(dict.fromkeys([*same_name, *close]))[:3]
        if self.suggestions:
            fix = "Did you mean " + " or ".join(self.suggestions) + "?"
        else:
            fix = "See every key with: spx-data config list"
        super().__init__(f"{key!r} is not a configuration key", fix=fix)
        self.key = key


# ---------------------------------------------------------------------------------------------
# Parsers shared by the fields (each accepts text and the already-typed value alike)
# ---------------------------------------------------------------------------------------------
def _none_word(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in NONE_WORDS:
        return None
    return value


def _strip_lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _base_url(value: str) -> str:
    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        why = (
            f"the scheme {parts.scheme!r} is not supported"
            if parts.scheme
            else "it has no scheme (http://)"
        )
        raise ValueError(f"{why}; ThetaTerminal answers plain HTTP on a local port")
    if not parts.hostname:
        raise ValueError("it names no host; ThetaTerminal usually runs on this machine")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("its port is not a number from 1 to 65535") from None
    if port is None or port == 0:
        raise ValueError(
            "it names no port; ThetaTerminal v3 listens on 25503 by default (v2: 25510)"
        )
    if parts.path or parts.query or parts.fragment:
        raise ValueError(
            f"it has a path or query ({text[len(parts.scheme) + 3 + len(parts.netloc) :]!r}); "
            "give only scheme, host and port, the client adds /v3 or /v2 itself"
        )
    if parts.username or parts.password:
        raise ValueError("it carries credentials; ThetaTerminal takes none over HTTP")
    return text


def _date(value: Any) -> Any:
    return parse_date(value) if isinstance(value, str) else value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    if not items:
        raise ValueError("the list is empty")
    return tuple(dict.fromkeys(items))


def _names_from(known: list[str], what: str):
    def check(items: tuple[str, ...]) -> tuple[str, ...]:
        for item in items:
            if item not in known:
                close = difflib.get_close_matches(item, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"{item!r} is not a {what}{hint}; known: {', '.join(known)}")
        return _dedupe(items)

    return check


def _dataset_names(items: tuple[str, ...]) -> tuple[str, ...]:
    return _names_from(list(vendor.ENDPOINTS), "dataset")(tuple(i.lower() for i in items))


def _root_names(items: tuple[str, ...]) -> tuple[str, ...]:
    return _names_from(list(vendor.ROOTS), "root")(tuple(i.upper() for i in items))


def _interval(value: str) -> str:
    if value not in vendor.INTERVALS:
        raise ValueError(f"it is not an interval; use one of {', '.join(vendor.INTERVALS)}")
    return value


def _end_time(value: dt.time | None) -> dt.time | None:
    if value is None:
        return None
    if not vendor.INTRADAY_START < value <= vendor.SPX_OPTIONS_CLOSE:
        raise ValueError(
            f"it must be after {vendor.INTRADAY_START} and no later than "
            f"{vendor.SPX_OPTIONS_CLOSE} (SPX options' last trade)"
        )
    return value


# Directories of the operating system that published data must never be written into.
SYSTEM_DIRS = frozenset(
    Path(p)
    for p in ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr")
)


def _not_empty(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("the path is empty; give a directory, or `none` for the default")
    return value


def _path(value: Any) -> Any:
    if isinstance(value, str | Path):
        text = str(value).strip()
        if "://" in text:
            # file:// URIs become paths; object stores are refused with the reason and the fix.
            text = str(local_path(text))
        # Relative paths resolve against the current directory, `..` folded, so what is stored
        # is the directory meant, not a path that means another one from elsewhere.
        path = Path(os.path.normpath(expand_path(text)))
        if path in SYSTEM_DIRS:
            raise ValueError(f"{path} is a system directory; choose a directory of your own")
        return path
    return value


def is_relative_path(value: Any) -> bool:
    """Whether ``value`` is a directory given relative to the current directory (``data/spx``),
    so that what was stored (the absolute path) can be said; ``none`` and URIs are not."""
    if not isinstance(value, str | Path) or "://" in str(value):
        return False
    text = str(value).strip()
    if not text or text.lower() in NONE_WORDS:
        return False
    return not Path(os.path.expandvars(os.path.expanduser(text))).is_absolute()


def _octal(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        try:
            return int(text, 8)
        except ValueError:
            raise ValueError("it is not an octal permission like 640") from None
    return value


def _file_mode(value: int) -> int:
    if not 0 <= value <= 0o777:
        raise ValueError("it is not a permission from 000 to 777")
    if value & 0o600 != 0o600:
        raise ValueError("the owner must be able to read and write its own files (6xx)")
    if value & 0o002:
        raise ValueError(
            f"{value:03o} lets every user of the machine overwrite published data; use 640, "
            "644 or 660"
        )
    return value


_NoneWord = BeforeValidator(_none_word)
URL = Annotated[str, AfterValidator(_base_url)]
ApiVersion = Annotated[Literal["v3", "v2"], BeforeValidator(_strip_lower)]
TierName = Annotated[Tier, BeforeValidator(_strip_lower)]
SessionDate = Annotated[dt.date, BeforeValidator(_date)]
DatasetList = Annotated[
    tuple[str, ...], BeforeValidator(_comma_list), AfterValidator(_dataset_names)
]
RootList = Annotated[tuple[str, ...], BeforeValidator(_comma_list), AfterValidator(_root_names)]
Interval = Annotated[str, BeforeValidator(_strip_lower), AfterValidator(_interval)]
EndTime = Annotated[dt.time | None, _NoneWord, AfterValidator(_end_time)]
# Before-validators run last-listed first: "none" must be recognised before path expansion.
Directory = Annotated[Path | None, BeforeValidator(_path), _NoneWord, BeforeValidator(_not_empty)]
FileMode = Annotated[int, BeforeValidator(_octal), AfterValidator(_file_mode)]


def setting(
    default: Any,
    doc: str,
    *,
    example: str,
    kind: str,
    default_doc: str | None = None,
    **bounds: float,
) -> Any:
    """A field with the documentation the CLI and the README show for its key.

    ``bounds`` are pydantic's numeric constraints (``ge``, ``gt``, ``le``): every numeric key
    has a lower and an upper one, and infinities and NaN are refused (``inf`` once reached the
    client as an overflowing timeout), so a refusal can name the whole range.
    """
    extra: dict[str, Any] = {"kind": kind}
    if default_doc is not None:
        extra["default_doc"] = default_doc
    if bounds:
        extra["range"] = range_text(**bounds)
        if isinstance(default, float) or isinstance(bounds.get("gt"), float):
            bounds = {**bounds, "allow_inf_nan": False}
    return Field(default, description=doc, examples=[example], json_schema_extra=extra, **bounds)


def range_text(**bounds: float) -> str:
    """``gt=0, le=3600`` -> ``greater than 0 and at most 3600``."""
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    return " and ".join(
        f"{words[name]} {_number(bounds[name])}" for name in words if name in bounds
    )


def _number(value: float) -> str:
    """``1e9`` -> ``1000000000`` (a bound is typed by hand, so never in exponent form)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# Longest listed SPX expiration is about six years out; ten years leaves room for LEAPS.
MAX_DTE_LIMIT = 3650


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ThetaDataSettings(_Section):
    """How to reach ThetaTerminal and what the subscription allows."""

    base_url: URL = setting(
        vendor.DEFAULT_V3_BASE_URL,
        "ThetaTerminal's address, scheme://host:port without a path. Use the same host the "
        "terminal was first reached with (127.0.0.1 and localhost differ to it).",
        example="http://127.0.0.1:25503",
        kind="URL",
    )
    api_version: ApiVersion = setting(
        "v3",
        "Which terminal generation to speak: v3 (ThetaTerminalv3.jar) or the legacy v2.",
        example="v3",
        kind="v3|v2",
    )
    subscription_tier: TierName = setting(
        Tier.STANDARD,
        "Your ThetaData options subscription; sets concurrency, history depth and datasets.",
        example="standard",
        kind="|".join(t.value for t in vendor.TIER_ORDER),
    )
    concurrency: Annotated[int | None, _NoneWord] = setting(
        None,
        "Concurrent requests to the terminal; none means the tier's limit "
        "(free 1, value 2, standard 4, pro 8).",
        example="2",
        kind="integer 1..128 or none",
        ge=1,
        le=vendor.TERMINAL_QUEUE_MAX,
        default_doc="none (the tier's limit)",
    )
    timeout_s: float = setting(
        60.0,
        "Seconds to wait for a response's next bytes before retrying the request; also how "
        "long a terminal that is starting, busy or reconnecting is waited for before exit 3.",
        example="60",
        kind="seconds",
        gt=0.0,
        le=3600,
    )
    connect_timeout_s: float = setting(
        3.0,
        "Seconds to wait for a TCP connection to the terminal.",
        example="3",
        kind="seconds",
        gt=0.0,
        le=300,
    )
    request_max_attempts: int = setting(
        6,
        "Attempts per request on retryable answers (429, 474, 5xx) before the request fails.",
        example="6",
        kind="integer 1..100",
        ge=1,
        le=100,
    )
    backoff_max_s: float = setting(
        60.0,
        "Longest wait between two attempts of one request (exponential backoff with jitter).",
        example="60",
        kind="seconds",
        gt=0.0,
        le=3600,
    )


class ProcessingSettings(_Section):
    """What to fetch for each trading session."""

    start_date: SessionDate = setting(
        dt.date(2016, 1, 4),
        "First session to process (backfills and gap analysis start here); must be a trading "
        "session within your tier's history.",
        example="2016-01-04",
        kind="date YYYY-MM-DD",
    )
    datasets: DatasetList = setting(
        DEFAULT_DATASETS,
        "Datasets to fetch, comma-separated: greeks, eod, open_interest (default), "
        "quote and greeks_eod (opt-in).",
        example="greeks,eod,open_interest",
        kind="comma list",
    )
    interval: Interval = setting(
        "1m",
        "Bar interval of the intraday datasets (greeks, quote).",
        example="1m",
        kind="|".join(vendor.INTERVALS),
    )
    max_dte: Annotated[int | None, _NoneWord] = setting(
        None,
        "Only expirations at most this many calendar days after the session; none = all.",
        example="60",
        kind="integer 0..3650 or none",
        ge=0,
        le=MAX_DTE_LIMIT,
        default_doc="none (no limit)",
    )
    roots: RootList = setting(
        vendor.ROOTS,
        "Option roots to fetch, comma-separated (SPX monthlies, SPXW weeklies and dailies).",
        example="SPX,SPXW",
        kind="comma list",
    )
    end_time: EndTime = setting(
        None,
        "Last time of day of intraday rows; 16:15:00 includes SPX's late trading. none = the "
        "terminal's default (16:00:00).",
        example="16:15:00",
        kind="time HH:MM:SS or none",
        default_doc="none (16:00:00)",
    )


class StorageSettings(_Section):
    """Where published data and temporary stages live."""

    output_dir: Directory = setting(
        None,
        "Published parquet, checksums and manifests.",
        example="/data/spx",
        kind="directory",
        default_doc="$SPX_DATA_HOME/data",
    )
    temp_dir: Directory = setting(
        None,
        "Temporary stages; must be on the same filesystem as output_dir so that publishing is "
        "an atomic rename.",
        example="/data/spx-tmp",
        kind="directory",
        default_doc="$SPX_DATA_HOME/tmp",
    )
    min_free_gb: float = setting(
        1.0,
        "Free space (GB) always kept on the output filesystem; a session that would eat into "
        "it is refused before it starts.",
        example="5",
        kind="GB",
        ge=0.0,
        le=1e9,
    )
    file_mode: FileMode = setting(
        0o640,
        "Permissions of published files, octal: the owner reads and writes (6xx) and other "
        "users may not write (no world-writable 666 or 777).",
        example="640",
        kind="octal",
    )


class QualitySettings(_Section):
    """When a session's data counts as good enough, and the tolerances of the research checks
    (``core.quality.Thresholds``: each key is the field of the same name)."""

    min_score: float = setting(
        0.95,
        "Quality score (0..1) below which a session is reported as low quality by gaps.",
        example="0.95",
        kind="number 0..1",
        ge=0.0,
        le=1,
    )
    spread_floor: float = setting(
        0.20,
        "A spread (dollars) up to which a quote is never flagged wide_spread (two $0.10 ticks).",
        example="0.20",
        kind="dollars",
        ge=0.0,
        le=100.0,
    )
    iv_max: float = setting(
        5.0,
        "Largest plausible implied volatility (5 = 500 %); above it a row is flagged iv_bounds.",
        example="5",
        kind="number",
        gt=0.0,
        le=100.0,
    )
    iv_error_max: float = setting(
        0.05,
        "Largest absolute iv_error of a two-sided quote before it is flagged iv_error.",
        example="0.05",
        kind="number",
        gt=0.0,
        le=100.0,
    )
    moneyness_sd: float = setting(
        2.0,
        "Standard deviations (IV·√T) beyond which a strike is clearly in or out of the money, "
        "so its absolute delta must lie on that side of 0.5 (delta_moneyness).",
        example="2",
        kind="number",
        gt=0.0,
        le=100.0,
    )
    arbitrage_tick: float = setting(
        0.01,
        "Dollars of slack added to the half-spreads in the vertical and butterfly tests.",
        example="0.01",
        kind="dollars",
        ge=0.0,
        le=100.0,
    )
    stale_minutes: int = setting(
        30,
        "Minutes a quote may stand still before it can be flagged stale_quote.",
        example="30",
        kind="minutes",
        ge=1,
        le=390,
    )
    underlying_tolerance: float = setting(
        0.001,
        "Share by which a row's underlying_price may differ from its minute's median "
        "(underlying_mismatch); 0.001 is 0.1 %.",
        example="0.001",
        kind="share",
        gt=0.0,
        le=1.0,
    )
    listing_rules: bool = setting(
        True,
        "Compare each session's expiration listing with the era's Cboe listing rules (coverage); "
        "false trusts the vendor's listing, for a reduced chain such as the simulator's tiny one.",
        example="false",
        kind="true|false",
    )
    drift_ratio: float = setting(
        0.5,
        "A session with fewer than this share (or more than its inverse) of the median contract "
        "count of the previous 20 sessions fails the coverage family's drift test.",
        example="0.5",
        kind="share",
        gt=0.0,
        le=1.0,
    )
    calendar_iv_tolerance: float = setting(
        0.002,
        "Implied volatility an IV fit is trusted to beyond its spread in the calendar test "
        "(0.002: 0.2 vol points).",
        example="0.002",
        kind="number",
        ge=0.0,
        le=1.0,
    )


class RetrySettings(_Section):
    """How failed sessions are retried."""

    max_attempts: int = setting(
        3,
        "Attempts per session (runs) before retries stop and the session stays failed.",
        example="3",
        kind="integer 1..100",
        ge=1,
        le=100,
    )


SECTIONS: dict[str, type[_Section]] = {
    "thetadata": ThetaDataSettings,
    "processing": ProcessingSettings,
    "storage": StorageSettings,
    "quality": QualitySettings,
    "retry": RetrySettings,
}


class Settings(BaseModel):
    """Every setting, by section; ``home`` is where they were loaded from (not a key)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    home: Path = Field(default_factory=spx_home, exclude=True)
    thetadata: ThetaDataSettings = Field(default_factory=ThetaDataSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @model_validator(mode="after")
    def _directories_under_home(self) -> Settings:
        # The directory defaults depend on SPX_DATA_HOME, so they are filled in here.
        if self.storage.output_dir is None:
            self.storage.output_dir = default_output_dir(self.home)
        if self.storage.temp_dir is None:
            self.storage.temp_dir = default_temp_dir(self.home)
        return self

    @property
    def tier_concurrency(self) -> int:
        """Concurrent requests the subscription tier allows."""
        return vendor.TIER_CONCURRENCY[self.thetadata.subscription_tier]

    @property
    def effective_concurrency(self) -> int:
        """Requests in flight: the configured value capped at the tier's limit, or the limit."""
        configured = self.thetadata.concurrency
        limit = self.tier_concurrency
        return limit if configured is None else min(configured, limit)

    def get(self, key: str) -> Any:
        """The typed value of a dotted key."""
        spec = key_spec(key)
        return getattr(getattr(self, spec.section), spec.name)

    def with_values(self, values: dict[str, Any]) -> Settings:
        """A copy with some keys replaced (values typed or text), validated."""
        data = self.model_dump()
        for key, value in values.items():
            spec = key_spec(key)
            data[spec.section][spec.name] = value
        return Settings.model_validate({**data, "home": self.home})

    def as_text(self) -> dict[str, str]:
        """Every key's value in its text form, in key order."""
        return {key: format_value(key, self.get(key)) for key in KEYS}


# ---------------------------------------------------------------------------------------------
# Keys: specs, text forms, parsing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeySpec:
    """What one key is, for the CLI, the docs and the environment."""

    key: str
    section: str
    name: str
    kind: str
    default: str
    description: str
    example: str
    env_var: str
    range: str = ""  # the allowed values of a numeric key, e.g. "greater than 0 and at most 300"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def env_var_name(key: str) -> str:
    """``thetadata.base_url`` -> ``SPX_DATA_THETADATA__BASE_URL``."""
    section, name = key.split(".", 1)
    return f"{ENV_PREFIX}{section.upper()}{ENV_SEPARATOR}{name.upper()}"


def _build_specs() -> dict[str, KeySpec]:
    specs = {}
    for section, model in SECTIONS.items():
        for name, field in model.model_fields.items():
            key = f"{section}.{name}"
            extra = field.json_schema_extra or {}
            assert isinstance(extra, dict)
            default_doc = extra.get("default_doc")
            specs[key] = KeySpec(
                key=key,
                section=section,
                name=name,
                kind=str(extra["kind"]),
                default=str(default_doc) if default_doc else format_value(key, field.default),
                description=field.description or "",
                example=(field.examples or [""])[0],
                env_var=env_var_name(key),
                range=str(extra.get("range", "")),
            )
    return specs


def key_spec(key: str) -> KeySpec:
    """The spec of ``key``; UnknownKeyError names the closest known keys."""
    try:
        return KEYS[key]
    except KeyError:
        raise UnknownKeyError(key, list(KEYS)) from None


def describe_keys() -> list[KeySpec]:
    """Every key with its kind, default, description, example and environment variable."""
    return list(KEYS.values())


@functools.cache
def _adapter(key: str) -> TypeAdapter[Any]:
    spec = KEYS[key]
    field = SECTIONS[spec.section].model_fields[spec.name]
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)])


def parse_value(key: str, value: Any) -> Any:
    """``value`` (text or typed) checked and converted for ``key``; ConfigError says why not."""
    spec = key_spec(key)
    try:
        return _adapter(key).validate_python(value)
    except ValidationError as exc:
        why = _reason(exc)
        if spec.range and spec.range not in why:
            why = f"{why}; allowed: {spec.range}"
        raise ConfigError(why, key=key, value=_shown(value), example=spec.example) from None


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else format_value_untyped(value)


def _reason(exc: ValidationError) -> str:
    error = exc.errors()[0]
    ctx = error.get("ctx") or {}
    if isinstance(ctx.get("error"), Exception):
        return str(ctx["error"])
    message = error["msg"]
    if error["type"] == "literal_error" or error["type"] == "enum":
        return f"it must be one of {message.split('Input should be ')[-1]}"
    return message.replace("Input should", "it should", 1)


def format_value_untyped(value: Any) -> str:
    """The text form of a typed value: lists comma-joined, None as ``none``, dates ISO."""
    if value is None:
        return "none"
    if isinstance(value, tuple | list):
        return ",".join(format_value_untyped(v) for v in value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_value(key: str, value: Any) -> str:
    """The text form of ``key``'s typed value, as stored and shown (file modes in octal)."""
    if key == "storage.file_mode" and isinstance(value, int):
        return f"{value:03o}"
    return format_value_untyped(value)


def json_value(key: str, value: Any) -> Any:
    """``key``'s typed value as JSON: lists stay lists, None stays null, the rest is text."""
    if value is None or (isinstance(value, bool | int | float) and key != "storage.file_mode"):
        return value
    if isinstance(value, tuple | list):
        return [format_value_untyped(v) for v in value]
    return format_value(key, value)


KEYS: dict[str, KeySpec] = _build_specs()
