"""A separate process serving one huge greeks answer, generated as it is sent (chunked).

Used by the memory test: the client's RSS must not grow with the answer, and the server's memory
must not be counted with it, hence a process of its own. Usage: big_answer_server.py ROWS
(prints the port on stdout, serves until killed).
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from spx_dagster.core.thetadata.vendor import GREEKS_FIRST_ORDER_COLUMNS

ROWS_PER_CHUNK = 2000


def row(i: int) -> bytes:
    strike = 4000 + 5 * (i // 782)
    right = "CALL" if (i // 391) % 2 == 0 else "PUT"
    hour, minute = divmod(9 * 60 + 30 + i % 391, 60)
    ts = f"2024-11-04T{hour:02d}:{minute:02d}:00"
    return (
        f"SPXW,2024-11-08,{strike}.000,{right},{ts},1.10,1.20,0.5000,-0.1000,0.2000,0.0100,"
        f"-0.0100,30.5000,0.2500,0.0010,{ts}.71,5712.25\r\n"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rows = 0

    def log_message(self, *args):
        return

    def do_GET(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = [(",".join(GREEKS_FIRST_ORDER_COLUMNS) + "\r\n").encode()]
        for start in range(0, self.rows, ROWS_PER_CHUNK):
            chunks.extend(row(i) for i in range(start, min(start + ROWS_PER_CHUNK, self.rows)))
            data = b"".join(chunks)
            chunks = []
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


if __name__ == "__main__":
    Handler.rows = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
