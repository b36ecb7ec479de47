"""A loopback HTTP server that misbehaves the ways real upstreams do.

Modes (per request, `server.mode = ...`):
- "ok": 200 with `server.body` (JSON).
- "trickle_headers": the status line and headers one byte at a time, forever.
- "trickle_body": good headers, then the body one byte at a time, forever.
- "endless": good headers (no length), then body bytes as fast as they go.
- "reset": good headers, half a body, then a TCP reset.
- "flap": alternately "ok" and "trickle_body".
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from typing import Any

_DRIP_S = 0.05  # between two bytes of a trickle


class FaultServer:
    def __init__(self, mode: str = "ok", body: Any = None) -> None:
        self.mode = mode
        self.body = body if body is not None else {"active": False, "status": "inactive"}
        self.requests = 0
        self.open_connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def next_mode(self) -> str:
        with self._lock:
            self.requests += 1
            if self.mode == "flap":
                return "ok" if self.requests % 2 else "trickle_body"
            return self.mode


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up is the point


def _handler(fs: FaultServer) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            with fs._lock:
                fs.open_connections += 1
            try:
                self._serve(conn)
            finally:
                with fs._lock:
                    fs.open_connections -= 1

        def _serve(self, conn: socket.socket) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            mode = fs.next_mode()
            body = json.dumps(fs.body).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            if mode == "ok":
                conn.sendall(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            elif mode == "trickle_headers":
                self._drip(conn, head + b"X-Pad: " + b"a" * 1_000_000)
            elif mode == "trickle_body":
                conn.sendall(head + b"Content-Length: 1000000\r\n\r\n")
                self._drip(conn, b" " * 1_000_000)
            elif mode == "endless":
                conn.sendall(head + b"Connection: close\r\n\r\n")
                while not fs._stop.is_set():
                    conn.sendall(b" " * 65536)
            elif mode == "reset":
                conn.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

        def _drip(self, conn: socket.socket, data: bytes) -> None:
            for i in range(len(data)):
                if fs._stop.wait(_DRIP_S):
                    return
                conn.sendall(data[i : i + 1])

    return Handler
