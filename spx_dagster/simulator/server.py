"""The simulator's HTTP server: a threaded server that answers like ThetaTerminal.

One thread per connection (``ThreadingHTTPServer``, HTTP/1.1 keep-alive). Data answers stream
with chunked transfer encoding, one chunk per generated block, straight from Arrow buffers.
Like the terminal, at most ``concurrency`` data requests are served at once, up to ``queue``
more wait, and any beyond that get 429 at once. The status path, the control API (``/_sim/``)
and wrong-version paths bypass that limit.

Wire faults (from ``faults.py``) are applied here: latency before answering, a status instead of
the data, slow bodies, a connection dropped mid-body (the chunk announced is never finished),
and truncation (the body ends cleanly mid-line: a proper chunked terminator after a cut row).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from spx_dagster.core.thetadata.health import SIMULATOR_SERVER_NAME
from spx_dagster.core.thetadata.vendor import (
    STATUS_CODES,
    TERMINAL_QUEUE_DEFAULT,
    TERMINAL_QUEUE_MAX,
    Tier,
)
from spx_dagster.simulator.anomalies import FAMILIES, parse_anomaly, parse_day
from spx_dagster.simulator.faults import FaultBook, FaultPlan, FaultRule, RequestInfo
from spx_dagster.simulator.render import vocabulary
from spx_dagster.simulator.terminal import (
    DEFAULT_MAX_ROWS,
    DEFAULT_V2_PAGE_ROWS,
    Answer,
    BodyFaults,
    Terminal,
)

CONTROL_PREFIX = "/_sim"
SLOW_PIECE = 16 << 10
CODE = {s.name: s.code for s in STATUS_CODES.values()}


class PortInUse(OSError):
    """The port is taken (another simulator or a ThetaTerminal?)."""


class RequestGate:
    """At most ``concurrency`` requests served at once, ``queue`` waiting, the rest refused."""

    def __init__(self, concurrency: int, queue: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 <= queue <= TERMINAL_QUEUE_MAX:
            raise ValueError(f"queue must be between 0 and {TERMINAL_QUEUE_MAX}, got {queue}")
        self.concurrency = concurrency
        self.queue = queue
        self.active = 0
        self.waiting = 0
        self.max_active = 0
        self.max_waiting = 0
        self.rejected = 0
        # Lane-seconds served (the integral of active slots over time) and the wall-clock span
        # from the first slot taken to the last one freed: the terminal time a benchmark
        # divides by the lanes for the ideal wall time of a workload.
        self.busy_lane_s = 0.0
        self.first_enter_at: float | None = None
        self.last_leave_at: float | None = None
        self._changed_at = time.monotonic()
        self._cond = threading.Condition()
        self._closed = False

    def _account(self) -> None:
        now = time.monotonic()
        self.busy_lane_s += self.active * (now - self._changed_at)
        self._changed_at = now

    def reset_accounting(self) -> None:
        with self._cond:
            self._account()
            self.busy_lane_s = 0.0
            self.first_enter_at = time.time() if self.active else None
            self.last_leave_at = None

    def enter(self) -> bool:
        """Take a slot, waiting in the queue if needed; False if the queue is full."""
        with self._cond:
            if self.active >= self.concurrency or self.waiting:
                if self.waiting >= self.queue:
                    self.rejected += 1
                    return False
                self.waiting += 1
                self.max_waiting = max(self.max_waiting, self.waiting)
                while self.active >= self.concurrency and not self._closed:
                    self._cond.wait()
                self.waiting -= 1
            self._account()
            if self.first_enter_at is None:
                self.first_enter_at = time.time()
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            return True

    def leave(self) -> None:
        with self._cond:
            self._account()
            self.active -= 1
            self.last_leave_at = time.time()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_status: Counter[int] = Counter()
            self.by_path: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.bytes_sent = 0
            self.rows_sent = 0
            self.client_aborts = 0

    def add(self, **counts) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def count(self, field: str, key) -> None:
        with self._lock:
            getattr(self, field)[key] += 1


class _Once:
    """Calls ``fn`` the first time only (releasing a gate slot exactly once)."""

    def __init__(self, fn: Callable[[], None] | None) -> None:
        self._fn = fn

    def __call__(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()


def _cut_point(data: bytes, header_len: int) -> int:
    """Where to cut a body so that it ends in the middle of a line (after the header if rows)."""
    if len(data) <= header_len + 2:
        return max(1, header_len // 2)
    cut = header_len + max(1, (len(data) - header_len) // 2)
    while cut > header_len + 1 and data[cut - 1 : cut] in (b"\n", b"\r"):
        cut -= 1
    if data[cut - 1 : cut] in (b"\n", b"\r"):
        cut += 3
    return min(cut, len(data) - 1)


class SimulatorServer:
    """A wire-compatible ThetaTerminal on a local port, in background threads.

    Args:
        port: TCP port (0: pick a free one; see ``port`` and ``base_url``).
        host: Interface to bind.
        profile: ``fast``, ``realistic``, ``flaky`` or ``hostile`` (``faults.PROFILES``).
        chain: ``full``, ``small`` or ``tiny`` (``listing.CHAINS``).
        seed: Seed of the market and of random faults: same seed, same bytes.
        api_version: ``v3`` (current terminal) or ``v2`` (legacy).
        concurrency: Requests served at once (the subscription tier's limit).
        queue: Requests waiting beyond that; past it, 429.
        today: The simulated "now" (default: today in New York).
        tier: Subscription tier simulated (endpoints and history beyond it answer 471).
        max_rows: Requests over this many rows answer 570 (LARGE_REQUEST).
        v2_page_rows: v2 answers are paged past this many ticks.
        log_requests: Print one line per request to stderr.
        anomalies: ``FAMILY[:N]`` specs (``anomalies.FAMILIES``): plant N quality anomalies of
            each family in every session served (see ``add_anomaly``).
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        profile: str = "fast",
        chain: str = "full",
        seed: int = 0,
        api_version: str = "v3",
        concurrency: int = 4,
        queue: int = TERMINAL_QUEUE_DEFAULT,
        *,
        today: dt.date | None = None,
        tier: Tier | str = Tier.PRO,
        max_rows: int = DEFAULT_MAX_ROWS,
        v2_page_rows: int = DEFAULT_V2_PAGE_ROWS,
        log_requests: bool = False,
        anomalies: Iterable[str] = (),
    ) -> None:
        self.host = host
        self.requested_port = port
        self.profile = profile
        self.chain = chain
        self.seed = seed
        self.api_version = api_version
        self.log_requests = log_requests
        self.faults = FaultBook(profile, seed)
        self.gate = RequestGate(concurrency, queue)
        self.terminal = Terminal(
            api_version=api_version,
            chain=chain,
            seed=seed,
            today=today,
            tier=tier,
            max_rows=max_rows,
            v2_page_rows=v2_page_rows,
        )
        for spec in anomalies:
            self.add_anomaly(*parse_anomaly(spec))
        self._stats = _Stats()
        self._connected = True
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int = port

    # ---- lifecycle --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Bind the port and serve in a background thread.

        Raises:
            PortInUse: The port is taken.
        """
        if self._httpd is not None:
            return self
        simulator = self

        class Handler(_Handler):
            sim = simulator

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        try:
            self._httpd = Server((self.host, self.requested_port), Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    errno.EADDRINUSE,
                    f"port {self.requested_port} on {self.host} is already in use (another "
                    "simulator or a ThetaTerminal?): stop it, or pick another port with --port",
                ) from exc
            raise
        self.port = self._httpd.server_address[1]
        # Built here, before any request thread exists (~0.3 s), not on a warm-up thread: the
        # only crash seen in this code base was pyarrow segfaulting in that thread's build.
        vocabulary()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"thetaterminal-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.gate.close()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (Ctrl-C raises KeyboardInterrupt)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    @staticmethod
    def run_in_subprocess(**kwargs):
        """Start a simulator in a separate Python process; see ``control.SimulatorProcess``."""
        from spx_dagster.simulator.control import SimulatorProcess

        return SimulatorProcess(**kwargs).start()

    # ---- control ----------------------------------------------------------------------------
    def add_fault(self, rule: FaultRule) -> int:
        """Inject ``rule``; returns its id."""
        return self.faults.add(rule)

    def clear_faults(self) -> int:
        """Remove every rule added (the profile's random faults stay)."""
        return self.faults.clear()

    def add_anomaly(self, family: str, count: int = 1) -> dict[str, int]:
        """Plant ``count`` more anomalies of ``family`` in every session served (seeded by the
        seed and the date); returns the counts per family. See ``anomalies.FAMILIES``."""
        return self.terminal.anomalies.add(family, count)

    def clear_anomalies(self) -> int:
        """Plant nothing from now on; returns how many were asked for per session."""
        return self.terminal.anomalies.clear()

    def anomalies(self, date: dt.date | str | None = None) -> dict:
        """The counts asked for, and with ``date`` the anomalies planted in that session."""
        out: dict = {"anomalies": self.terminal.anomalies.counts()}
        if date is not None:
            day = parse_day(date)
            out["date"] = day.isoformat()
            out["planted"] = self.terminal.anomalies.records(day)
        return out

    def set_connected(self, connected: bool) -> None:
        """False: data endpoints answer 474 and the status path says DISCONNECTED."""
        self._connected = bool(connected)

    @property
    def connected(self) -> bool:
        return self._connected

    def stats(self) -> dict:
        """Counters since start (or the last ``reset_stats``)."""
        s, g = self._stats, self.gate
        with g._cond:
            g._account()
            lanes = {
                "lanes": g.concurrency,
                "busy_lane_s": round(g.busy_lane_s, 3),
                "first_request_at": g.first_enter_at,
                "last_request_end_at": g.last_leave_at,
            }
        with s._lock:
            return {
                **lanes,
                "requests": s.requests,
                "by_status": dict(s.by_status),
                "by_path": dict(s.by_path),
                "bytes_sent": s.bytes_sent,
                "rows_sent": s.rows_sent,
                "faults": dict(s.faults),
                "client_aborts": s.client_aborts,
                "max_concurrent_seen": g.max_active,
                "max_queued_seen": g.max_waiting,
                "active": g.active,
                "queued": g.waiting,
                "rejected": g.rejected,
                "connected": self._connected,
            }

    def reset_stats(self) -> None:
        self._stats.reset()
        with self.gate._cond:
            self.gate.max_active = self.gate.active
            self.gate.max_waiting = self.gate.waiting
            self.gate.rejected = 0
        self.gate.reset_accounting()

    def info(self) -> dict:
        return {
            "base_url": self.base_url,
            "port": self.port,
            "api_version": self.api_version,
            "profile": self.profile,
            "chain": self.chain,
            "seed": self.seed,
            "concurrency": self.gate.concurrency,
            "queue": self.gate.queue,
            "today": self.terminal.today.isoformat(),
            "tier": self.terminal.tier.value,
        }

    # ---- requests ---------------------------------------------------------------------------
    def _handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            self._control(handler, method, path, query)
            return
        started = time.monotonic()
        self._stats.add(requests=1)
        self._stats.count("by_path", path)
        if method != "GET":
            self._send(handler, self.terminal.error("NO_IMPL", f"{method} is not supported"))
            return
        if not self.terminal.is_data(path):
            probe = self.faults.plan_probe(path) if self.terminal.is_health(path) else None
            if probe is not None and probe.status is not None:
                self._stats.count("faults", "status")
                self._send(handler, self.terminal.http_error(probe.status))
                return
            self._send(handler, self.terminal.answer(path, query, connected=self._connected))
            return
        if not self.gate.enter():
            answer = self.terminal.error(
                "OS_LIMIT",
                f"the request queue is full ({self.gate.concurrency} running, "
                f"{self.gate.queue} waiting)",
            )
            self._send(handler, answer)
            return
        release = _Once(self.gate.leave)
        try:
            plan = self.faults.plan(RequestInfo.from_query(path, query))
            for kind in plan.fired:
                self._stats.count("faults", kind)
            if plan.latency_s:
                time.sleep(plan.latency_s)
            if plan.status is not None:
                answer = self.terminal.http_error(plan.status)
            else:
                answer = self.terminal.answer(
                    path,
                    query,
                    connected=self._connected,
                    base_url=self.base_url,
                    faults=BodyFaults(plan.extra_column, plan.malformed_row),
                )
            self._send(handler, answer, plan, release)
        finally:
            release()
            if self.log_requests:
                sys.stderr.write(
                    f"{time.strftime('%H:%M:%S')} GET {handler.path} -> "
                    f"{getattr(handler, 'sent_status', '?')} "
                    f"{(time.monotonic() - started) * 1000:.0f} ms\n"
                )

    def _send(
        self,
        handler: _Handler,
        answer: Answer,
        plan: FaultPlan | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        release = release or (lambda: None)
        plan = plan or FaultPlan()
        handler.sent_status = answer.status
        self._stats.count("by_status", answer.status)
        try:
            if answer.pieces is None:
                release()
                handler.send_response(answer.status)
                handler.send_header("Content-Type", answer.content_type)
                handler.send_header("Content-Length", str(len(answer.body)))
                for key, value in answer.headers.items():
                    handler.send_header(key, value)
                handler.end_headers()
                handler.wfile.write(answer.body)
                self._stats.add(bytes_sent=len(answer.body), rows_sent=answer.rows)
                return
            self._stream(handler, answer, plan, release)
        except (ConnectionError, TimeoutError, OSError) as exc:
            if not isinstance(exc, ConnectionError | TimeoutError) and exc.errno not in (
                errno.EPIPE,
                errno.ECONNRESET,
                errno.EBADF,
                errno.ENOTCONN,
            ):
                raise
            self._stats.add(client_aborts=1)
            handler.close_connection = True
        finally:
            if answer.pieces is not None:
                answer.pieces.close()

    def _stream(self, handler: _Handler, answer: Answer, plan: FaultPlan, release) -> None:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        for key, value in answer.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        out = handler.wfile
        pieces = answer.pieces
        sent = 0

        def chunk(data, announce: int | None = None) -> None:
            nonlocal sent
            if len(data):
                out.write(b"%X\r\n" % (announce or len(data)))
                out.write(data)
                if announce is None:
                    out.write(b"\r\n")
                sent += len(data)

        try:
            if plan.truncate or plan.drop_mid_body:
                header = bytes(next(pieces, b""))
                first = bytes(next(pieces, b""))
                data = header + first
                cut = _cut_point(data, len(header))
                if plan.truncate:
                    chunk(data[:cut])
                    release()
                    out.write(b"0\r\n\r\n")
                else:
                    chunk(data[:cut], announce=len(data))  # the chunk is never finished
                    release()
                    handler.close_connection = True
                    with contextlib.suppress(OSError):
                        handler.connection.shutdown(socket.SHUT_RDWR)
                return
            for piece in pieces:
                if plan.slow_body_s is None:
                    chunk(piece)
                    continue
                view = memoryview(piece)
                for start in range(0, len(view), SLOW_PIECE):
                    chunk(view[start : start + SLOW_PIECE])
                    time.sleep(plan.slow_body_s)
            release()
            out.write(b"0\r\n\r\n")
            self._stats.add(rows_sent=answer.rows)
        except (ConnectionError, TimeoutError):
            raise
        except Exception:  # a generation bug: the answer cannot be completed; say so loudly
            traceback.print_exc(file=sys.stderr)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
        finally:
            self._stats.add(bytes_sent=sent)

    # ---- control API ------------------------------------------------------------------------
    def _control(self, handler: _Handler, method: str, path: str, query: dict[str, str]) -> None:
        action = path[len(CONTROL_PREFIX) :].strip("/")
        try:
            if action == "stats" and method == "GET":
                return self._json(handler, 200, self.stats())
            if action == "stats" and method == "DELETE":
                self.reset_stats()
                return self._json(handler, 200, self.stats())
            if action == "info" and method == "GET":
                return self._json(handler, 200, self.info())
            if action == "faults" and method == "GET":
                return self._json(handler, 200, {"faults": self.faults.rules()})
            if action == "faults" and method == "POST":
                rule = FaultRule.from_dict(handler.read_json())
                return self._json(handler, 201, {"id": self.add_fault(rule), **rule.to_dict()})
            if action == "faults" and method == "DELETE":
                return self._json(handler, 200, {"cleared": self.clear_faults()})
            if action == "anomalies" and method == "GET":
                return self._json(handler, 200, self.anomalies(query.get("date") or None))
            if action == "anomalies" and method == "POST":
                body = handler.read_json()
                unknown = sorted(set(body) - {"family", "count"})
                if unknown or "family" not in body:
                    raise ValueError(
                        'the body must be {"family": FAMILY, "count": N} with FAMILY one of '
                        + ", ".join(FAMILIES)
                    )
                counts = self.add_anomaly(body["family"], body.get("count", 1))
                return self._json(handler, 201, {"anomalies": counts})
            if action == "anomalies" and method == "DELETE":
                return self._json(handler, 200, {"cleared": self.clear_anomalies()})
            if action == "connected" and method in ("POST", "PUT"):
                value = query.get("value", "true").strip().lower()
                if value not in ("true", "false", "1", "0"):
                    raise ValueError(f"value={value!r}: use true or false")
                self.set_connected(value in ("true", "1"))
                return self._json(handler, 200, {"connected": self._connected})
            if action == "connected" and method == "GET":
                return self._json(handler, 200, {"connected": self._connected})
        except (ValueError, TypeError) as exc:
            return self._json(handler, 400, {"error": str(exc)})
        return self._json(
            handler,
            404,
            {
                "error": f"{method} {path} is not a control endpoint",
                "endpoints": [
                    "GET /_sim/stats",
                    "DELETE /_sim/stats",
                    "GET /_sim/info",
                    "GET|POST|DELETE /_sim/faults",
                    "GET /_sim/anomalies[?date=YYYY-MM-DD]",
                    "POST|DELETE /_sim/anomalies",
                    "POST /_sim/connected?value=true|false",
                ],
            },
        )

    @staticmethod
    def _json(handler: _Handler, status: int, payload: dict) -> None:
        body = json.dumps(payload, default=str).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Names the simulator to core.thetadata.health.terminal_kind (manifests record the source).
    server_version = f"{SIMULATOR_SERVER_NAME}/1.0"
    sys_version = ""
    sim: SimulatorServer
    sent_status: int | str = "?"

    def log_message(self, format: str, *args) -> None:  # access lines come from _handle
        return

    def version_string(self) -> str:
        return self.server_version

    def send_response(self, code: int, message: str | None = None) -> None:
        # The terminal's own codes (472, 474, 571, ...) have no standard reason phrase.
        vendor = STATUS_CODES.get(code)
        if message is None and vendor is not None and code not in self.responses:
            message = vendor.name
        super().send_response(code, message)

    def read_json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object of FaultRule fields")
        return data

    def do_GET(self) -> None:
        self.sim._handle(self, "GET")

    def do_POST(self) -> None:
        self.sim._handle(self, "POST")

    def do_PUT(self) -> None:
        self.sim._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.sim._handle(self, "DELETE")
