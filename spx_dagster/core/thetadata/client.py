"""The ThetaData client: typed Arrow answers from a local ThetaTerminal (v3, or v2 via adapter).

What it guarantees:
- Bodies are streamed (``stream=True`` → ``pyarrow.csv.open_csv``): memory does not grow with an
  answer's size; ``fetch_to_parquet``/``fetch_to_arrow`` stage an answer straight to disk,
  atomically.
- A dropped connection or a truncated body is never taken for a complete answer: the request is
  retried whole and anything streamed from the failed attempt is discarded (see ``sinks.py``).
- Errors are typed by cause (``errors.py``) and retried by policy (``retry.py``): 429 (honouring
  Retry-After), 474 (after the terminal reports CONNECTED again), 571, 470, 5xx, resets and
  truncation back off exponentially with full jitter; 472 is an empty answer; 570 is split (by
  right, then per strike; wildcard requests first per expiration); the rest fail at once.
- At most ``concurrency`` requests are outstanding per terminal across all threads of the process
  (``limits.py``); across processes, Dagster's ``thetadata`` pool does that job.
- Malformed rows are skipped, counted (``malformed_rows``) and handed to ``on_malformed(line,
  reason)`` once the answer is complete, so the pipeline can quarantine them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from spx_dagster.core.datasets import SCHEMAS
from spx_dagster.core.thetadata.errors import (
    Disconnected,
    LargeRequest,
    NoData,
    ThetaDataError,
)
from spx_dagster.core.thetadata.health import (
    Health,
    HealthState,
    probe_terminal,
    wait_until_ready,
)
from spx_dagster.core.thetadata.limits import request_slots
from spx_dagster.core.thetadata.retry import ClientStats, RetryPolicy, call_with_retries
from spx_dagster.core.thetadata.sinks import (
    ArrowSink,
    BatchSink,
    ParquetSink,
    SegmentSink,
    TableSink,
)
from spx_dagster.core.thetadata.transport import AttemptLog, HistoryRequest, Http
from spx_dagster.core.thetadata.vendor import (
    API_PREFIX,
    DEFAULT_V3_BASE_URL,
    ENDPOINTS,
    INTERVALS,
    RIGHT_CODE_TO_V3_PARAM,
)
from spx_dagster.core.thetadata.wire import LIST_SCHEMAS, OnMalformed

log = logging.getLogger("spx_dagster.thetadata")

RIGHTS = tuple(r for r in RIGHT_CODE_TO_V3_PARAM if r in ("C", "P"))


@dataclass(frozen=True)
class FetchResult:
    """Figures of one fetched answer.

    Attributes:
        rows: Rows delivered (malformed rows excluded).
        bytes: Body bytes of the attempts that made up the answer.
        seconds: Wall-clock time including retries and waits.
        no_data: The terminal had nothing for the request (472): zero rows, not an error.
        retries: Retries by cause (``rate_limited``, ``truncated``, ... and ``large_request``
            for splits).
        requests: HTTP requests made, retries and split parts included.
        malformed_rows: Rows skipped because a value could not be parsed.
        extra_columns: Unknown wire columns that were dropped (schema drift).
        path: The file written (``fetch_to_parquet``/``fetch_to_arrow`` only; None when
            ``no_data``).
    """

    rows: int
    bytes: int
    seconds: float
    no_data: bool
    retries: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    malformed_rows: int = 0
    extra_columns: tuple[str, ...] = ()
    path: Path | None = None


@dataclass
class _Outcome:
    """Accumulates one fetch across its retries and split parts."""

    rows: int = 0
    bytes: int = 0
    requests: int = 0
    parts: int = 0
    no_data_parts: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    malformed: list[tuple[str, str]] = field(default_factory=list)
    extra_columns: set[str] = field(default_factory=set)


def _as_time(value: dt.time | str | None) -> dt.time | None:
    if value is None or isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"end_time {value!r} is not a time of day: use HH:MM:SS, e.g. 16:15:00"
        ) from None


class ThetaClient:
    """A client for one ThetaTerminal.

    Args:
        base_url: Terminal root without the version prefix, e.g. ``http://127.0.0.1:25503``.
        api_version: ``v3`` (the current terminal) or ``v2`` (the legacy one, via an adapter).
        concurrency: Outstanding requests allowed across all threads of this process.
        connect_timeout_s: TCP connect timeout; "no terminal listening" fails within about
            twice this.
        timeout_s: Read timeout: the longest the terminal may stay silent.
        max_attempts: Attempts per request for retryable causes.
        backoff_max_s: Upper bound of any wait between attempts.
        end_time: Last time of day of intraday answers (``16:15:00`` for SPX's late session);
            None keeps the terminal's default (16:00:00).
        reconnect_timeout_s: How long a 474 waits for the terminal to report CONNECTED before the
            next attempt anyway.
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_V3_BASE_URL,
        api_version: str = "v3",
        concurrency: int = 4,
        connect_timeout_s: float = 3.0,
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        backoff_max_s: float = 60.0,
        end_time: dt.time | str | None = None,
        reconnect_timeout_s: float = 120.0,
    ) -> None:
        if api_version not in API_PREFIX:
            raise ValueError(
                f"thetadata.api_version {api_version!r} is not supported: use one of "
                f"{', '.join(API_PREFIX)} (v3 is the current ThetaTerminal)"
            )
        if max_attempts < 1:
            raise ValueError(f"thetadata.request_max_attempts must be >= 1, got {max_attempts}")
        self.base_url = base_url.rstrip("/")
        for suffix in API_PREFIX.values():
            if self.base_url.endswith(suffix):
                raise ValueError(
                    f"thetadata.base_url {base_url!r} includes the version path {suffix!r}: "
                    f"drop it (use {self.base_url[: -len(suffix)]})"
                )
        self.api_version = api_version
        self.concurrency = concurrency
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.end_time = _as_time(end_time)
        self.reconnect_timeout_s = reconnect_timeout_s
        self.policy = RetryPolicy(max_attempts=max_attempts, backoff_max_s=backoff_max_s)
        self.stats = ClientStats()
        self._http = Http(
            base_url=self.base_url,
            api_version=api_version,
            slots=request_slots(self.base_url, concurrency),
            connect_timeout_s=connect_timeout_s,
            timeout_s=timeout_s,
            stats=self.stats,
            pool_size=concurrency,
        )
        if api_version == "v2":
            from spx_dagster.core.thetadata.v2 import V2Wire

            self._wire: Any = V2Wire(end_time=self.end_time)
        else:
            from spx_dagster.core.thetadata.v3 import V3Wire

            self._wire = V3Wire(end_time=self.end_time)

    @classmethod
    def from_settings(cls, settings: Any) -> ThetaClient:
        """A client configured from the settings model (``core/config.py``).

        Uses ``settings.thetadata.*`` for the terminal, ``settings.effective_concurrency`` (the
        tier's limit or a lower configured one) and ``settings.processing.end_time``.
        """
        td = settings.thetadata
        concurrency = getattr(settings, "effective_concurrency", None) or td.concurrency
        processing = getattr(settings, "processing", None)
        return cls(
            base_url=str(td.base_url),
            api_version=str(td.api_version),
            concurrency=int(concurrency),
            connect_timeout_s=float(td.connect_timeout_s),
            timeout_s=float(td.timeout_s),
            max_attempts=int(td.request_max_attempts),
            backoff_max_s=float(td.backoff_max_s),
            end_time=getattr(processing, "end_time", None),
        )

    def __enter__(self) -> ThetaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __repr__(self) -> str:
        return (
            f"ThetaClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
            f"concurrency={self.concurrency})"
        )

    # ----------------------------------------------------------------------------------------
    # Health
    # ----------------------------------------------------------------------------------------
    def probe(self) -> Health:
        """Whether a usable terminal answers at ``base_url`` (see ``health.py``).

        The probe does not take a request slot, so it answers even while fetches saturate them.
        """
        return probe_terminal(
            self.base_url,
            api_version=self.api_version,
            connect_timeout_s=self.connect_timeout_s,
            timeout_s=min(self.timeout_s, 10.0),
            session=self._http.session,
        )

    def wait_ready(
        self, *, on_wait: Callable[[Health, float, float], None] | None = None
    ) -> Health:
        """Probe until the terminal is ready, waiting for a starting, busy or reconnecting one
        for up to ``timeout_s`` (see ``health.wait_until_ready``)."""
        return wait_until_ready(
            self.probe,
            budget_s=self.timeout_s,
            backoff_max_s=self.policy.backoff_max_s,
            on_wait=on_wait,
        )

    # ----------------------------------------------------------------------------------------
    # Lists
    # ----------------------------------------------------------------------------------------
    def list_expirations(self, root: str) -> list[dt.date]:
        """Every expiration ThetaData lists for ``root`` (past ones included), sorted."""
        table = self._list(
            "list_expirations",
            f"list expirations {root}",
            lambda log: self._wire.list_expirations(self._http, root, log),
        )
        return sorted(set(table.column("expiration").to_pylist()))

    def list_strikes(self, root: str, expiration: dt.date) -> list[float]:
        """The strikes (dollars) listed for ``root`` expiring on ``expiration``, sorted."""
        table = self._list(
            "list_strikes",
            f"list strikes {root} {expiration}",
            lambda log: self._wire.list_strikes(self._http, root, expiration, log),
        )
        return sorted(set(table.column("strike").to_pylist()))

    def list_contracts(self, session_date: dt.date, roots: Sequence[str]) -> pa.Table:
        """Contracts listed on ``session_date`` for ``roots``: root, expiration, strike, right."""
        roots = list(roots)
        return self._list(
            "list_contracts",
            f"list contracts {','.join(roots)} {session_date}",
            lambda log: self._wire.list_contracts(self._http, session_date, roots, log),
        )

    def _list(
        self, kind: str, describe: str, produce: Callable[[AttemptLog], Iterator[pa.RecordBatch]]
    ) -> pa.Table:
        sink = TableSink(LIST_SCHEMAS[kind])
        outcome = _Outcome()
        self._run_part(describe, produce, sink, outcome)
        return sink.table()

    # ----------------------------------------------------------------------------------------
    # History
    # ----------------------------------------------------------------------------------------
    def fetch_to(
        self,
        dataset: str,
        *,
        root: str,
        session_date: dt.date,
        expiration: dt.date | None = None,
        interval: str = "1m",
        sink: BatchSink,
        on_malformed: OnMalformed | None = None,
    ) -> FetchResult:
        """Stream one dataset's answer for a root and session into ``sink``.

        Batches have the schema ``datasets.SCHEMAS[dataset]``. A failed attempt is taken back
        with ``sink.discard()`` before the retry; each completed request (or split part) is
        confirmed with ``sink.commit()``.

        Args:
            dataset: A key of ``vendor.ENDPOINTS`` (``greeks``, ``eod``, ``open_interest``,
                ``quote``, ``greeks_eod``).
            root: ``SPX`` or ``SPXW``.
            session_date: The trading session.
            expiration: One expiration, or None for all (only where the endpoint allows it).
            interval: Intraday interval (``vendor.INTERVALS``), ignored for end-of-day data.
            sink: Receives the batches.
            on_malformed: Called with (line text, reason) for every skipped row.

        Raises:
            ThetaDataError: A permanent error, or a retryable one after its attempts.
            ValueError: Bad arguments (unknown dataset or interval, missing expiration).
        """
        request = self._history_request(dataset, root, session_date, expiration, interval)
        started = time.monotonic()
        outcome = _Outcome()
        self._fetch_splitting(request, sink, outcome)
        for line, reason in outcome.malformed:
            if on_malformed is not None:
                on_malformed(line, reason)
        return FetchResult(
            rows=outcome.rows,
            bytes=outcome.bytes,
            seconds=time.monotonic() - started,
            no_data=outcome.parts > 0 and outcome.no_data_parts == outcome.parts,
            retries=dict(outcome.retries),
            requests=outcome.requests,
            malformed_rows=len(outcome.malformed),
            extra_columns=tuple(sorted(outcome.extra_columns)),
        )

    def fetch_table(
        self,
        dataset: str,
        *,
        root: str,
        session_date: dt.date,
        expiration: dt.date | None = None,
        interval: str = "1m",
        on_malformed: OnMalformed | None = None,
    ) -> pa.Table:
        """The whole answer as one in-memory table (empty on no data): for small answers."""
        sink = TableSink(SCHEMAS[dataset])
        self.fetch_to(
            dataset,
            root=root,
            session_date=session_date,
            expiration=expiration,
            interval=interval,
            sink=sink,
            on_malformed=on_malformed,
        )
        return sink.table()

    def fetch_to_parquet(self, dataset: str, *, path: Path | str, **kwargs: Any) -> FetchResult:
        """Stage one answer as a zstd parquet file at ``path``, atomically (tmp, fsync, rename).

        On no data (472) no file is written and an existing one at ``path`` is removed, so a
        stale answer cannot pass for the new one. On error nothing at ``path`` changes.
        The other arguments (``root``, ``session_date``, ``expiration``, ``interval``,
        ``on_malformed``) as in :meth:`fetch_to`.
        """
        return self._fetch_to_file(ParquetSink(Path(path), SCHEMAS[dataset]), dataset, **kwargs)

    def fetch_to_arrow(self, dataset: str, *, path: Path | str, **kwargs: Any) -> FetchResult:
        """As :meth:`fetch_to_parquet`, into an LZ4 Arrow IPC file: how a session's answers are
        staged (read back once, by the validate stage; ``core.storage.stage_tables``)."""
        return self._fetch_to_file(ArrowSink(Path(path), SCHEMAS[dataset]), dataset, **kwargs)

    def _fetch_to_file(self, sink: SegmentSink, dataset: str, **kwargs: Any) -> FetchResult:
        try:
            result = self.fetch_to(dataset, sink=sink, **kwargs)
            if result.no_data:
                sink.abort()
                sink.path.unlink(missing_ok=True)
                return result
            sink.finish()
        except BaseException:
            sink.abort()
            raise
        return FetchResult(**{**result.__dict__, "path": sink.path})

    def _history_request(self, dataset, root, session_date, expiration, interval):
        if dataset not in ENDPOINTS:
            raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(ENDPOINTS)}")
        endpoint = ENDPOINTS[dataset]
        if endpoint.intraday and interval not in INTERVALS:
            raise ValueError(
                f"interval {interval!r} is not one ThetaData serves: choose one of "
                f"{', '.join(INTERVALS)}"
            )
        if expiration is None and not endpoint.expiration_wildcard:
            raise ValueError(
                f"{dataset} needs one request per expiration (the endpoint refuses "
                "expiration=*): pass expiration="
            )
        if isinstance(session_date, dt.datetime) or not isinstance(session_date, dt.date):
            raise ValueError(f"session_date must be a datetime.date, got {session_date!r}")
        return HistoryRequest(dataset, root, session_date, expiration, interval)

    def _fetch_splitting(self, request: HistoryRequest, sink: BatchSink, outcome: _Outcome):
        try:
            self._run_part(
                request.describe(),
                lambda log: self._wire.history(self._http, request, log),
                sink,
                outcome,
            )
        except LargeRequest as too_large:
            parts = self._split(request, too_large)
            outcome.retries[too_large.category] += 1
            self.stats.retried(too_large.category)
            self.stats.add(splits=1)
            log.warning(
                "%s is too large for one request (570): splitting into %d parts",
                request.describe(),
                len(parts),
            )
            for part in parts:
                self._fetch_splitting(part, sink, outcome)

    def _split(self, request: HistoryRequest, too_large: LargeRequest) -> list[HistoryRequest]:
        """Smaller requests covering ``request``: per expiration, then right, then strike.

        v3 takes one strike or all of them, so the finest split is one request per strike; the
        v2 adapter can only split a wildcard request per expiration.
        """
        dimensions = self._wire.split_dimensions
        if request.expiration is None and "expiration" in dimensions:
            expirations = [
                e for e in self.list_expirations(request.root) if e >= request.session_date
            ]
            if expirations:
                return [replace(request, expiration=e) for e in expirations]
        elif request.right is None and "right" in dimensions:
            return [replace(request, right=r) for r in RIGHTS]
        elif request.strike is None and "strike" in dimensions:
            strikes = self.list_strikes(request.root, request.expiration)
            if strikes:
                return [replace(request, strike=s) for s in strikes]
        raise too_large

    def _run_part(
        self,
        describe: str,
        produce: Callable[[AttemptLog], Iterator[pa.RecordBatch]],
        sink: BatchSink,
        outcome: _Outcome,
    ) -> None:
        """One request (or split part) with retries, streamed into ``sink``."""

        def attempt() -> tuple[AttemptLog, bool]:
            log_ = AttemptLog()
            try:
                with closing(produce(log_)) as batches:
                    for batch in batches:
                        sink.write(batch)
            except NoData:
                sink.discard()
                return log_, True
            except BaseException:
                sink.discard()
                raise
            finally:
                self.stats.add(bytes=log_.bytes)
                outcome.requests += log_.requests
            sink.commit()
            return log_, False

        def on_retry(error: ThetaDataError, attempt_number: int, seconds: float) -> None:
            outcome.retries[error.category] += 1
            self.stats.retried(error.category)
            if isinstance(error, Disconnected):
                self._wait_for_upstream()

        attempt_log, no_data = call_with_retries(
            attempt, policy=self.policy, describe=describe, on_retry=on_retry
        )
        outcome.parts += 1
        outcome.rows += attempt_log.rows
        outcome.bytes += attempt_log.bytes
        outcome.malformed.extend(attempt_log.malformed)
        outcome.extra_columns.update(attempt_log.extra_columns)
        if no_data:
            outcome.no_data_parts += 1
        self.stats.add(
            rows=attempt_log.rows,
            no_data=int(no_data),
            malformed_rows=len(attempt_log.malformed),
            extra_columns=len(attempt_log.extra_columns),
        )

    def _wait_for_upstream(self) -> None:
        """Poll the terminal's MDDS status until CONNECTED or ``reconnect_timeout_s`` passes."""
        deadline = time.monotonic() + self.reconnect_timeout_s
        pause = min(max(self.policy.backoff_max_s / 4, 0.05), 1.0)
        health = None
        while time.monotonic() < deadline:
            with self._http.slots:
                health = self.probe()
            if health.state is HealthState.READY:
                log.info("ThetaTerminal at %s reconnected to ThetaData", self.base_url)
                return
            time.sleep(pause)
        log.warning(
            "ThetaTerminal at %s still not connected after %.0fs (%s); retrying anyway",
            self.base_url,
            self.reconnect_timeout_s,
            health.detail if health else "no probe",
        )
