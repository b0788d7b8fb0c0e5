"""Is a usable ThetaTerminal at the configured URL, and if not, what is wrong?

Five answers, each with what to do: nothing listening (refused or connect timeout), a terminal that
is starting or whose queue is full (571, 429, a 5xx: THETADATA.md's "wait, retry" codes), a terminal
that lost ThetaData (MDDS status not CONNECTED, or 474), a terminal of the other generation (410 on
v2 paths from a v3 terminal, 404 on v3 paths from a v2 one), and ready.

A busy or reconnecting terminal is waited for (``wait_until_ready``), exactly as a data request
would wait: one 571 while the terminal starts is not a wrong URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import requests
import tenacity

from spx_dagster.core.thetadata.errors import TerminalUnreachable
from spx_dagster.core.thetadata.vendor import (
    HEALTH_PATHS,
    HEALTH_READY_TEXT,
    STATUS_CODES,
    Behaviour,
    status_behaviour,
)


class HealthState(StrEnum):
    READY = "ready"
    UNREACHABLE = "unreachable"  # no terminal listening at the URL
    DISCONNECTED = "disconnected"  # terminal up, not connected to ThetaData
    BUSY = "busy"  # terminal starting (571) or its queue full (429): wait, then probe again
    WRONG_API_VERSION = "wrong_api_version"
    ERROR = "error"  # anything else (an unexpected answer)


@dataclass(frozen=True)
class Health:
    """The probe's verdict.

    Attributes:
        state: One of :class:`HealthState`.
        url: The status URL probed.
        detail: What was seen and what to do, one sentence.
        latency_ms: Round trip of the status request (None when nothing answered).
    """

    state: HealthState
    url: str
    detail: str
    latency_ms: float | None

    @property
    def ok(self) -> bool:
        return self.state is HealthState.READY

    @property
    def waiting(self) -> bool:
        """The terminal answered and is expected to become ready by itself."""
        return self.state in (HealthState.BUSY, HealthState.DISCONNECTED)


def _behaviour(code: int) -> Behaviour | None:
    return STATUS_CODES[code].behaviour if code in STATUS_CODES else None


def _is_gone(code: int) -> bool:
    return code in STATUS_CODES and STATUS_CODES[code].name == "GONE"


def _is_no_impl(code: int) -> bool:
    return code in STATUS_CODES and STATUS_CODES[code].name == "NO_IMPL"


def probe_terminal(
    base_url: str,
    *,
    api_version: str = "v3",
    connect_timeout_s: float = 3.0,
    timeout_s: float = 10.0,
    session: requests.Session | None = None,
) -> Health:
    """Probe the terminal's MDDS status for ``api_version`` and classify the answer.

    Args:
        base_url: Terminal root, e.g. ``http://127.0.0.1:25503`` (no ``/v3``).
        api_version: The generation the client will speak (``v3`` or ``v2``).
        connect_timeout_s: TCP connect timeout.
        timeout_s: Read timeout.
        session: Optional session to reuse connections.
    """
    base = base_url.rstrip("/")
    http = session or requests.Session()
    other = "v2" if api_version == "v3" else "v3"
    url = base + HEALTH_PATHS[api_version]
    started = time.monotonic()
    try:
        response = http.get(url, timeout=(connect_timeout_s, timeout_s))
    except (requests.ConnectionError, requests.Timeout) as exc:
        if isinstance(exc, requests.ReadTimeout):
            return Health(
                HealthState.ERROR,
                url,
                f"the terminal at {base} accepted the connection but did not answer within "
                f"{timeout_s:g}s: check its console, or restart it",
                None,
            )
        error = TerminalUnreachable.at(base, api_version=api_version, url=url)
        return Health(HealthState.UNREACHABLE, url, str(error), None)
    latency_ms = (time.monotonic() - started) * 1000.0
    text = response.text.strip()
    code = response.status_code
    if _behaviour(code) is Behaviour.OK:
        if text.upper() == HEALTH_READY_TEXT:
            return Health(HealthState.READY, url, f"ThetaTerminal {api_version} ready", latency_ms)
        return Health(
            HealthState.DISCONNECTED,
            url,
            f"the terminal at {base} is up but its ThetaData connection is {text or 'unknown'}: "
            "check credentials and the terminal's console; it reconnects by itself",
            latency_ms,
        )
    if _behaviour(code) is Behaviour.WAIT_UPSTREAM:
        return Health(
            HealthState.DISCONNECTED,
            url,
            f"the terminal at {base} answered {code}: it lost its connection to ThetaData and "
            "reconnects by itself; check its console if this persists",
            latency_ms,
        )
    if status_behaviour(code) is Behaviour.RETRY:
        vendor = STATUS_CODES.get(code)
        what = f"{code} {vendor.name} ({vendor.meaning})" if vendor else f"{code}"
        return Health(
            HealthState.BUSY,
            url,
            f"the terminal at {base} answered {what}: it is starting or busy",
            latency_ms,
        )
    if _is_gone(code) or _is_no_impl(code):
        other_url = base + HEALTH_PATHS[other]
        try:
            other_ok = http.get(other_url, timeout=(connect_timeout_s, timeout_s)).ok
        except requests.RequestException:
            other_ok = False
        if _is_gone(code) or other_ok:
            return Health(
                HealthState.WRONG_API_VERSION,
                url,
                f"the terminal at {base} speaks {other}, not {api_version}: "
                f"set thetadata.api_version {other} "
                f"(spx-data config set thetadata.api_version {other})",
                latency_ms,
            )
    vendor = STATUS_CODES.get(code)
    if vendor is not None and vendor.advice:
        # A documented answer that will not fix itself: its own advice, not "check the URL".
        return Health(
            HealthState.ERROR,
            url,
            f"the terminal at {base} answered {code} {vendor.name} ({vendor.meaning}): "
            f"{vendor.advice}",
            latency_ms,
        )
    return Health(
        HealthState.ERROR,
        url,
        f"unexpected answer {code} from {url} ({text[:120]!r}): check thetadata.base_url "
        "points at ThetaTerminal",
        latency_ms,
    )


def wait_until_ready(
    probe: Callable[[], Health],
    *,
    budget_s: float,
    backoff_max_s: float,
    on_wait: Callable[[Health, float, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Health:
    """Probe until the terminal is ready, or not expected to become ready, or ``budget_s`` ends.

    A busy or reconnecting answer is probed again with exponential backoff (from 0.25 s up to
    ``backoff_max_s``, never past the budget); ``on_wait(health, pause_s, remaining_s)`` is told
    before each pause, so a user sees what is waited for. Returns the last verdict: still
    ``waiting`` when the budget ran out.
    """
    deadline = time.monotonic() + budget_s
    backoff = tenacity.wait_exponential(multiplier=0.25, max=backoff_max_s)

    def remaining_s() -> float:
        return deadline - time.monotonic()

    def pause_s(state: tenacity.RetryCallState) -> float:
        return max(0.0, min(backoff(state), remaining_s()))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_wait is not None:
            pause = state.next_action.sleep if state.next_action else 0.0
            on_wait(state.outcome.result(), pause, remaining_s())

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda health: health.waiting),
        stop=lambda state: remaining_s() <= 0,
        wait=pause_s,
        before_sleep=before_sleep,
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result(),
    )
    return retrying(probe)


# The built-in simulator names itself in the Server header of every answer (a real ThetaTerminal
# does not), so manifests can record whether a session came from real data.
SIMULATOR_SERVER_NAME = "spx-data-simulator"


def terminal_kind(base_url: str, api_version: str = "v3", *, timeout_s: float = 2.0) -> str:
    """``"simulator"`` when the built-in simulator answers at ``base_url``, else ``"terminal"``."""
    url = base_url.rstrip("/") + HEALTH_PATHS.get(api_version, HEALTH_PATHS["v3"])
    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.RequestException:
        return "terminal"
    server = response.headers.get("Server", "")
    return "simulator" if SIMULATOR_SERVER_NAME in server else "terminal"
