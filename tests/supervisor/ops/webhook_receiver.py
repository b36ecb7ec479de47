"""A webhook receiver on loopback for the alert tests: records every body and
answers a scripted status (or hangs until closed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from supervisor.clock import SystemClock

_real = SystemClock()


class Receiver:
    """`statuses`: the answers to the first requests, in order (then 200).
    `hang=True`: never answers (until `close()`). `endless_body=True`: answers 200
    with a body that never ends (until the client goes away). `dribble=True`:
    sends its status line, then one header byte every 0.2 s (until `close()`)."""

    def __init__(
        self, statuses: list[int] | None = None, hang: bool = False, endless_body: bool = False, dribble: bool = False
    ) -> None:
        self.statuses = list(statuses or [])
        self.hang = hang
        self.endless_body = endless_body
        self.dribble = dribble
        self.body_bytes_sent = 0
        self.bodies: list[Any] = []  # every request's JSON body, in arrival order
        self.arrived: list[float] = []  # when each arrived (real monotonic time)
        self.requests = 0
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # releases hanging answers
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 10.0) -> bool:
        """Wait (on a condition, not a sleep) until `predicate(self)` holds."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def delivered(self) -> list[Any]:
        """The bodies answered with a 2xx."""
        with self._cond:
            return [b for b, ok in zip(self.bodies, self._ok, strict=True) if ok]

    _ok: list[bool]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self
        receiver._ok = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._cond:
                    receiver.requests += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if not receiver.hang:
                        receiver.bodies.append(json.loads(body))
                        receiver.arrived.append(_real.monotonic())
                        receiver._ok.append(200 <= status < 300)
                    receiver._cond.notify_all()
                if receiver.hang:
                    receiver._closing.wait(30)
                    return
                if receiver.dribble:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    while not receiver._closing.wait(0.2):
                        try:
                            self.wfile.write(b"X")
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                if receiver.endless_body:
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
                    try:
                        while not receiver._closing.is_set():
                            self.wfile.write(chunk)
                            receiver.body_bytes_sent += 65536
                    except OSError:
                        return  # the client went away: what it wanted
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
