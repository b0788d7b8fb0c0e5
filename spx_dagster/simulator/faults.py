"""Fault injection: rules added at run time, the named profiles, and the seeded decisions.

A :class:`FaultRule` says what goes wrong (``kind``), for which requests (``path`` substring,
session ``date``, ``root``, ``expiration``), how often (``probability``) and how many times
(``times``; None = for ever). Rules added by tests or the control API are consulted first, in
the order added; then the profile's random rules. Random decisions hash the seed, the rule, the
request's identity (path and sorted query) and how many times that identical request was seen
before, so a run is reproducible whatever the thread timing, and a retry of a failed request
draws again instead of failing for ever.

Faults apply to data endpoints only; the status path is governed by ``set_connected``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import statistics
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from spx_dagster.core.thetadata.vendor import STATUS_CODES
from spx_dagster.simulator.anomalies import parse_day

CODE = {s.name: s.code for s in STATUS_CODES.values()}
INTERNAL_SERVER_ERROR = 500  # not a ThetaTerminal code: what an HTTP stack in between answers

FAULT_KINDS: dict[str, str] = {
    "status": "answer `status` (with the terminal's body for it) instead of the data",
    "latency": "wait `seconds` before answering",
    "slow_body": "send the body in 16 KiB pieces with `seconds` between them",
    "drop_mid_body": "close the connection in the middle of the body (no chunked terminator)",
    "truncate": "end the body cleanly in the middle of a line",
    "malformed_row": "write one row with a value that is not a number",
    "extra_column": "add an unexpected column (schema drift)",
}
DEFAULT_SECONDS = {"latency": 0.5, "slow_body": 0.01}


def _as_date(value: dt.date | str | None, name: str) -> dt.date | None:
    return None if value is None else parse_day(value, f"FaultRule {name}")


@dataclass
class FaultRule:
    """One fault to inject.

    Args:
        kind: One of ``FAULT_KINDS``.
        path: Substring of the request path the rule applies to (None: every data endpoint).
        status: HTTP status for ``kind="status"`` (e.g. 472, 474, 429, 571, 500).
        seconds: Delay for ``latency``, pause between pieces for ``slow_body``.
        times: How many requests it hits before it is spent (None: for ever).
        probability: Chance of hitting a matching request (seeded, reproducible).
        date: Only requests for this session (``date``/``start_date``).
        root: Only requests for this root (``symbol``/``root``).
        expiration: Only requests for this expiration.
    """

    kind: str
    path: str | None = None
    status: int | None = None
    seconds: float | None = None
    times: int | None = None
    probability: float = 1.0
    date: dt.date | str | None = None
    root: str | None = None
    expiration: dt.date | str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"FaultRule kind {self.kind!r} is unknown: use one of {', '.join(FAULT_KINDS)}"
            )
        if self.kind == "status":
            if self.status is None:
                raise ValueError('FaultRule(kind="status") needs status=, e.g. status=474')
            self.status = int(self.status)
            if not 100 <= self.status <= 599:
                raise ValueError(f"FaultRule status {self.status} is not an HTTP status code")
        if self.seconds is None and self.kind in DEFAULT_SECONDS:
            self.seconds = DEFAULT_SECONDS[self.kind]
        if self.seconds is not None and self.seconds < 0:
            raise ValueError(f"FaultRule seconds must be >= 0, got {self.seconds}")
        if self.times is not None and int(self.times) < 1:
            raise ValueError(f"FaultRule times must be >= 1 or None (for ever), got {self.times}")
        if not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"FaultRule probability must be in [0, 1], got {self.probability}")
        self.probability = float(self.probability)
        self.date = _as_date(self.date, "date")
        self.expiration = _as_date(self.expiration, "expiration")
        self.root = self.root.upper() if self.root else None

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("date", "expiration"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown FaultRule field(s) {', '.join(unknown)}: use {', '.join(sorted(known))}"
            )
        return cls(**data)

    def matches(self, request: RequestInfo) -> bool:
        if self.path is not None and self.path not in request.path:
            return False
        if self.date is not None and request.session_date != self.date:
            return False
        if self.root is not None and self.root not in request.roots:
            return False
        return self.expiration is None or request.expiration == self.expiration


@dataclass(frozen=True)
class RequestInfo:
    """What fault rules look at in a request."""

    path: str
    identity: str
    session_date: dt.date | None = None
    roots: tuple[str, ...] = ()
    expiration: dt.date | None = None
    is_list: bool = False

    @classmethod
    def from_query(cls, path: str, query: dict[str, str]) -> RequestInfo:
        def date_of(*names: str) -> dt.date | None:
            for name in names:
                try:
                    value = _as_date(query.get(name), name)
                except ValueError:
                    value = None
                if value is not None:
                    return value
            return None

        roots = query.get("symbol") or query.get("root") or ""
        return cls(
            path=path,
            identity=path + "?" + "&".join(f"{k}={query[k]}" for k in sorted(query)),
            session_date=date_of("date", "start_date"),
            roots=tuple(r.strip().upper() for r in roots.split(",") if r.strip()),
            expiration=date_of("expiration", "exp"),
            is_list="/list/" in path,
        )


@dataclass
class FaultPlan:
    """What happens to one request."""

    latency_s: float = 0.0
    status: int | None = None
    slow_body_s: float | None = None
    drop_mid_body: bool = False
    truncate: bool = False
    malformed_row: bool = False
    extra_column: bool = False
    fired: list[str] = field(default_factory=list)

    def apply(self, rule: FaultRule) -> bool:
        """Take ``rule`` into the plan unless one of its kind already applies."""
        kind = rule.kind
        if kind == "status":
            if self.status is not None:
                return False
            self.status = rule.status
        elif kind == "latency":
            self.latency_s += rule.seconds or 0.0
        elif kind == "slow_body":
            if self.slow_body_s is not None:
                return False
            self.slow_body_s = rule.seconds or 0.0
        elif getattr(self, kind):
            return False
        else:
            setattr(self, kind, True)
        self.fired.append(f"status_{rule.status}" if kind == "status" else kind)
        return True


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Latency:
    """Lognormal per-request latency: ``median_s`` times exp(``sigma`` * N(0, 1))."""

    median_s: float
    sigma: float


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    history_latency: Latency | None = None
    list_latency: Latency | None = None
    faults: tuple[FaultRule, ...] = ()


def _random(kind: str, probability: float, **kwargs) -> FaultRule:
    return FaultRule(kind=kind, probability=probability, **kwargs)


_REALISTIC_HISTORY = Latency(0.15, 0.5)  # median 150 ms, p90 ~280 ms before the body
_REALISTIC_LIST = Latency(0.006, 0.5)
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("fast", "no latency, no faults: answers as fast as they can be generated"),
        Profile(
            "realistic",
            "a real terminal's pace: lognormal latency per request (history median 150 ms, "
            "p90 ~280 ms; lists ~6 ms) before the body streams; no faults",
            _REALISTIC_HISTORY,
            _REALISTIC_LIST,
        ),
        Profile(
            "flaky",
            "realistic latency plus modest random faults: 474 2%, 429 2%, 571 1%, 500 1%, "
            "connection dropped mid-body 1%",
            _REALISTIC_HISTORY,
            _REALISTIC_LIST,
            (
                _random("status", 0.02, status=CODE["DISCONNECTED"]),
                _random("status", 0.02, status=CODE["OS_LIMIT"]),
                _random("status", 0.01, status=CODE["SERVER_STARTING"]),
                _random("status", 0.01, status=INTERNAL_SERVER_ERROR),
                _random("drop_mid_body", 0.01),
            ),
        ),
        Profile(
            "hostile",
            "slower and much worse: 474 4%, 429 5%, 571 3%, 500 3%, dropped 3%, truncated 3%, "
            "slow bodies 5%, a malformed row 3%, an extra column 2%",
            Latency(0.25, 0.7),
            Latency(0.01, 0.7),
            (
                _random("status", 0.04, status=CODE["DISCONNECTED"]),
                _random("status", 0.05, status=CODE["OS_LIMIT"]),
                _random("status", 0.03, status=CODE["SERVER_STARTING"]),
                _random("status", 0.03, status=INTERNAL_SERVER_ERROR),
                _random("drop_mid_body", 0.03),
                _random("truncate", 0.03),
                _random("slow_body", 0.05, seconds=0.002),
                _random("malformed_row", 0.03),
                _random("extra_column", 0.02),
            ),
        ),
    )
}


def describe_profiles() -> str:
    """One line per profile, for help texts."""
    return "\n".join(f"{p.name}: {p.summary}" for p in PROFILES.values())


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------
def seeded_uniform(*parts: object) -> float:
    """A reproducible number in (0, 1) from any parts."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


class FaultBook:
    """The rules in force and the per-request decisions.

    Args:
        profile: Name of a profile in ``PROFILES``.
        seed: Seed of the random decisions.
    """

    def __init__(self, profile: str = "fast", seed: int = 0) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile {profile!r} is unknown: use one of {', '.join(PROFILES)}")
        self.profile = PROFILES[profile]
        self.seed = int(seed)
        self._rules: list[tuple[int, FaultRule]] = []
        self._serial = 0
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> int:
        if not isinstance(rule, FaultRule):
            raise TypeError(f"add_fault takes a FaultRule, got {type(rule).__name__}")
        with self._lock:
            self._serial += 1
            self._rules.append((self._serial, rule))
            return self._serial

    def clear(self) -> int:
        with self._lock:
            count = len(self._rules)
            self._rules.clear()
            return count

    def rules(self) -> list[dict]:
        with self._lock:
            return [{"id": i, **r.to_dict()} for i, r in self._rules]

    def plan_probe(self, path: str) -> FaultPlan:
        """Faults of a readiness probe: only rules whose ``path`` names the status endpoint
        (a terminal that is starting or whose queue is full answers its probe with 571 or 429
        too); profiles and latency never touch it."""
        plan = FaultPlan()
        with self._lock:
            self._apply_rules(
                plan,
                lambda _serial, rule: (
                    rule.path is not None and rule.path in path and rule.kind == "status"
                ),
            )
        return plan

    def _apply_rules(self, plan: FaultPlan, hits: Callable[[int, FaultRule], bool]) -> None:
        """Apply the added rules that ``hits`` and spend one use of each (lock held)."""
        spent = []
        for serial, rule in self._rules:
            if not hits(serial, rule):
                continue
            if plan.apply(rule) and rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    spent.append(serial)
        self._rules = [(s, r) for s, r in self._rules if s not in spent]

    def plan(self, request: RequestInfo) -> FaultPlan:
        """Decide the faults of one data request (and spend the rules that hit it)."""
        plan = FaultPlan()
        with self._lock:
            occurrence = self._seen[request.identity]
            self._seen[request.identity] += 1
            self._apply_rules(
                plan,
                lambda serial, rule: (
                    rule.matches(request)
                    and (
                        rule.probability >= 1.0
                        or seeded_uniform(self.seed, "rule", serial, request.identity, occurrence)
                        < rule.probability
                    )
                ),
            )
        for n, rule in enumerate(self.profile.faults):
            if (
                rule.matches(request)
                and seeded_uniform(self.seed, "profile", n, request.identity, occurrence)
                < rule.probability
            ):
                plan.apply(rule)
        latency = self.profile.list_latency if request.is_list else self.profile.history_latency
        if latency is not None:
            u = seeded_uniform(self.seed, "latency", request.identity, occurrence)
            normal = statistics.NormalDist().inv_cdf(u)
            plan.latency_s += latency.median_s * math.exp(latency.sigma * normal)
        return plan
