"""A tiny HTTP server that answers exactly as scripted, for wire faults the simulator cannot make.

Real HTTP over loopback: Content-Length lies, chunked bodies cut before their last chunk, bodies
without the final CRLF, bare-LF line ends, and v2 envelopes in pages. Everything else is tested
against the simulator (``spx_dagster.simulator``).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        status: HTTP status.
        body: Bytes sent (possibly fewer, see ``send_bytes``).
        headers: Extra headers.
        length: Content-Length to announce: "auto" (len(body)), None (close-delimited or chunked)
            or a number (a lie, for mismatch tests).
        chunked: Send with Transfer-Encoding: chunked.
        send_bytes: Send only this many body bytes, then close the connection abruptly.
        delay_s: Wait before answering.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | str | None = "auto"
    chunked: bool = False
    send_bytes: int | None = None
    delay_s: float = 0.0


class ScriptedTerminal:
    """Serves ``Reply`` queues per path (the last reply repeats); records every request."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = defaultdict(list)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        terminal = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                return

            def do_GET(self):
                terminal._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ScriptedTerminal:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, path: str, *replies: Reply) -> None:
        self.replies[path] = list(replies)

    def _next(self, path: str) -> Reply:
        with self._lock:
            queue = self.replies.get(path)
            if not queue:
                return Reply(status=404, body=b"no such path")
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((parts.path, query))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self.in_flight -= 1

        try:
            reply = self._next(parts.path)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            handler.send_response(reply.status)
            for k, v in reply.headers.items():
                handler.send_header(k, v)
            body = reply.body if reply.send_bytes is None else reply.body[: reply.send_bytes]
            if reply.chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            elif reply.length == "auto":
                handler.send_header("Content-Length", str(len(reply.body)))
            elif reply.length is not None:
                handler.send_header("Content-Length", str(reply.length))
            if reply.length is None and not reply.chunked:
                handler.send_header("Connection", "close")
            handler.end_headers()
            # The request stops counting before its body is written, not after: the client takes
            # the lane back the moment it has read the body, and a count still held while this
            # thread waits for a core after the last write would show a 4th request "at once".
            release()
            if reply.chunked:
                for i in range(0, len(body), 100):
                    piece = body[i : i + 100]
                    handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                if reply.send_bytes is None:
                    handler.wfile.write(b"0\r\n\r\n")
            else:
                handler.wfile.write(body)
            handler.wfile.flush()
            if reply.send_bytes is not None or reply.length is None:
                handler.close_connection = True
                handler.connection.shutdown(2)
        finally:
            release()
