"""Run a session's request plan against ThetaTerminal, staging every answer on disk as it arrives.

Each request's answer is written to ``<staging>/<dataset>/<ROOT>_<expiration|ALL>.arrow`` (an
Arrow IPC file, by the client, atomically) with a ``.json`` sidecar of its fetch figures; the
sidecar is written last, so a request counts as staged only when both exist. An interrupted or
failed run therefore resumes from the staged requests. Requests run on a bounded thread pool
sized to the tier's concurrency; the first permanent failure stops new requests from starting
(those in flight finish and stay staged).

Lines of an answer the client could not parse are staged beside it, in
``<staging>/<dataset>/_malformed/<ROOT>_<expiration|ALL>.parquet`` with the request's root and
expiration and the reason per line (``core/validation/malformed.py``), before the sidecar; the
validate stage puts them in quarantine, so no line the terminal sent is dropped silently.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spx_dagster.core.chains import PlannedRequest, SessionPlan
from spx_dagster.core.storage.atomic import atomic_write_bytes
from spx_dagster.core.storage.layout import ARROW_SUFFIX, STATS_SUFFIX
from spx_dagster.core.validation.malformed import malformed_file, write_malformed


class Fetcher(Protocol):
    def fetch_to_arrow(self, dataset: str, **kwargs: Any) -> Any: ...


@dataclass
class StagedAnswer:
    """Figures of one staged request (the sidecar's content)."""

    dataset: str
    root: str
    expiration: str | None
    rows: int
    bytes: int
    seconds: float
    no_data: bool
    retries: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    malformed_rows: int = 0  # lines skipped by the client, staged for quarantine


@dataclass
class FetchSummary:
    answers: list[StagedAnswer]
    seconds: float

    @property
    def requests(self) -> int:
        return len(self.answers)

    @property
    def rows(self) -> int:
        return sum(a.rows for a in self.answers)

    @property
    def bytes(self) -> int:
        return sum(a.bytes for a in self.answers)

    @property
    def no_data(self) -> int:
        return sum(1 for a in self.answers if a.no_data)

    @property
    def malformed_rows(self) -> int:
        return sum(a.malformed_rows for a in self.answers)

    @property
    def resumed(self) -> int:
        return sum(1 for a in self.answers if a.resumed)

    @property
    def retries(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for a in self.answers:
            total.update(a.retries)
        return dict(total)


class FetchInterrupted(RuntimeError):
    """The stop event was set; staged answers are kept for resume."""


def staged_paths(staging_dir: Path, request: PlannedRequest) -> tuple[Path, Path]:
    base = staging_dir / request.dataset / request.name
    return base.with_suffix(ARROW_SUFFIX), base.with_suffix(STATS_SUFFIX)


def staged_malformed_path(staging_dir: Path, request: PlannedRequest) -> Path:
    """Where the lines of ``request``'s answer that could not be parsed are staged."""
    return malformed_file(staging_dir / request.dataset, request.name)


def load_staged(staging_dir: Path, request: PlannedRequest) -> StagedAnswer | None:
    """The staged answer of ``request`` if both its data and its sidecar are on disk."""
    data, sidecar = staged_paths(staging_dir, request)
    if not sidecar.exists():
        return None
    try:
        answer = StagedAnswer(**json.loads(sidecar.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not answer.no_data and not data.exists():
        return None
    if answer.malformed_rows and not staged_malformed_path(staging_dir, request).exists():
        return None  # its malformed lines are lost: fetch again rather than drop them
    answer.resumed = True
    return answer


def _write_sidecar(path: Path, answer: StagedAnswer) -> None:
    """The sidecar says the answer is staged (resume trusts it): durable before it counts."""
    atomic_write_bytes(path, json.dumps(answer.__dict__).encode())


def fetch_plan(
    client: Fetcher,
    plan: SessionPlan,
    staging_dir: Path,
    *,
    interval: str,
    concurrency: int,
    on_answer: Callable[[PlannedRequest, StagedAnswer], None] | None = None,
    stop: threading.Event | None = None,
    fetch_kwargs: dict[str, Any] | None = None,
) -> FetchSummary:
    """Fetch every request of ``plan`` not already staged; return the figures of all of them.

    Raises the first permanent error after in-flight requests finish (their answers stay staged),
    or ``FetchInterrupted`` when ``stop`` is set.
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    answers: list[StagedAnswer] = []
    pending: list[PlannedRequest] = []
    for request in plan.requests:
        staged = load_staged(staging_dir, request)
        if staged is None:
            pending.append(request)
        else:
            answers.append(staged)
            if on_answer:
                on_answer(request, staged)

    extra_kwargs = dict(fetch_kwargs or {})
    also_on_malformed = extra_kwargs.pop("on_malformed", None)

    def run_one(request: PlannedRequest) -> StagedAnswer:
        data, sidecar = staged_paths(staging_dir, request)
        data.parent.mkdir(parents=True, exist_ok=True)
        malformed: list[tuple[str, str]] = []

        def on_malformed(line: str, reason: str) -> None:
            malformed.append((line, reason))
            if also_on_malformed is not None:
                also_on_malformed(line, reason)

        result = client.fetch_to_arrow(
            request.dataset,
            root=request.root,
            session_date=plan.session,
            expiration=request.expiration,
            interval=interval,
            path=data,
            on_malformed=on_malformed,
            **extra_kwargs,
        )
        # Staged before the sidecar: an answer counts as staged only with its malformed lines.
        malformed_rows = write_malformed(
            staged_malformed_path(staging_dir, request),
            malformed,
            root=request.root,
            expiration=request.expiration,
        )
        answer = StagedAnswer(
            dataset=request.dataset,
            root=request.root,
            expiration=request.expiration.isoformat() if request.expiration else None,
            rows=int(result.rows),
            bytes=int(result.bytes),
            seconds=float(result.seconds),
            no_data=bool(result.no_data),
            retries=dict(result.retries),
            malformed_rows=malformed_rows,
        )
        _write_sidecar(sidecar, answer)
        return answer

    error: BaseException | None = None
    queue = list(reversed(pending))
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fetch") as pool:
        in_flight: dict[Future[StagedAnswer], PlannedRequest] = {}
        while queue or in_flight:
            while queue and len(in_flight) < concurrency and error is None and not stop.is_set():
                request = queue.pop()
                in_flight[pool.submit(run_one, request)] = request
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED, timeout=0.5)
            for future in done:
                request = in_flight.pop(future)
                try:
                    answer = future.result()
                except BaseException as exc:  # the first error wins; the others finish
                    if error is None:
                        error = exc
                    continue
                answers.append(answer)
                if on_answer:
                    on_answer(request, answer)
    if error is not None:
        raise error
    if stop.is_set() and len(answers) < len(plan.requests):
        raise FetchInterrupted(
            f"stopped after {len(answers)} of {len(plan.requests)} requests; "
            "staged answers are kept and the next run resumes from them"
        )
    return FetchSummary(answers, time.monotonic() - started)
