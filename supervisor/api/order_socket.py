"""The order socket: orders over a persistent Unix socket, for execution services on this machine.

Measured beside the HTTP path (bench section 9), an order over HTTP pays the HTTP stack's floor
(uvicorn, headers, a response object) on every call, more than the decision itself; a second
HTTP server did not lower it (docs/benchmarks.md). Here a connection stays open and carries one
JSON order per line; each gets one JSON line back, in order:

- the same answer as `POST /v1/evaluate` (`evaluate_line`: the same parsing, refusals and
  decisions, journaled alike), or `{"status": N, "detail": "..."}` for what HTTP answers with
  a 4xx (not JSON: 422). A line that is not an answer has no `"decision"`.
- With `api.execution_access = "token"` the first line is `{"token": "..."}`, an execution
  client's; it is checked again before every order (a reload that removes it ends the
  connection), and a client held to some accounts is held to them here. A missing or wrong
  token: a 401 line, journaled, and the connection closed.
- A line longer than the HTTP body limit, a line begun and not finished within
  `api.request_timeout_s`, or no line for `api.order_socket_idle_s`: the connection is closed
  (the first with a 413 line). Beyond `api.max_connections` connections: a 503 line and closed.

The socket file is made owner-only (0600) before it listens; a file of another kind at its path
is never removed (start fails, naming it), nor is a socket another process still serves.
Each connection has its own thread, which decides on it like any in-process caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from supervisor.api.answers import dumps
from supervisor.api.app import MAX_BODY_BYTES, evaluate_line, read_json
from supervisor.api.auth import Gatekeeper
from supervisor.api.service import Decider
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger

__all__ = ["OrderSocket", "OrderSocketError"]

log = get_logger("riskgate.api")

_READ = 65_536
_real_monotonic = time.monotonic  # a socket's timeouts are real time, whatever the gate's clock
_ACCEPT_RETRY_S = 0.1  # after accept() failed (no file descriptor left): tried again this soon
_SEND_S = 10.0  # an answer not taken within this (the peer stopped reading): the connection is closed


class OrderSocketError(RiskgateError):
    """The order socket could not listen at its path."""


class _ClosedError(Exception):
    """The connection ends: the peer went away or was too slow."""


def _json_line(body: dict[str, Any]) -> bytes:
    return dumps(body) + b"\n"


def _line(status: int, detail: str) -> bytes:
    return _json_line({"status": status, "detail": detail})


class _Lines:
    """Lines from a connection: at most `limit` bytes each, begun lines finished within
    `line_s`, and some line within `idle_s` (real time: a socket's timeouts)."""

    def __init__(self, conn: socket.socket, limit: int, idle_s: float, line_s: float) -> None:
        self._conn = conn
        self._limit = limit
        self._idle_s = idle_s
        self._line_s = line_s
        self._buf = bytearray()
        self._scanned = 0
        self._begun = _real_monotonic()
        self._first = True  # the first line (the hello) is due within line_s of connecting, as an HTTP request is

    def next(self) -> bytes:
        """The next line without its newline; `_ClosedError` when there is none to have; `OverflowError` when
        it is longer than the limit."""
        buf = self._buf
        while True:
            end = buf.find(b"\n", self._scanned)
            if end > self._limit:
                raise OverflowError
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 1]
                self._scanned = 0
                self._first = False
                self._begun = _real_monotonic()  # what follows it (if anything) began now
                return line
            if len(buf) > self._limit:
                raise OverflowError
            self._scanned = len(buf)
            begun = buf or self._first
            wait = self._begun + self._line_s - _real_monotonic() if begun else self._idle_s
            if wait <= 0:
                raise _ClosedError
            self._conn.settimeout(wait)
            try:
                chunk = self._conn.recv(_READ)
            except OSError as exc:  # TimeoutError too
                raise _ClosedError from exc
            if not chunk:
                raise _ClosedError
            if not buf and not self._first:
                self._begun = _real_monotonic()
            buf += chunk


class OrderSocket:
    def __init__(self, service: Decider, keeper: Gatekeeper, path: str) -> None:
        self._service = service
        self._keeper = keeper
        self.path = Path(path)
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._open: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._made: tuple[int, int] | None = None  # (device, inode) of the socket file it made

    def bind(self) -> OrderSocket:
        """Listen at `path` (owner-only); `OrderSocketError` naming why not."""
        where = f"api.order_socket {str(self.path)!r}"
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise OrderSocketError(f"{where}: {exc.strerror or exc}") from exc
        if mode is not None:
            if not stat.S_ISSOCK(mode):
                raise OrderSocketError(f"{where} exists and is not a socket: not removed, start refused")
            if _served(self.path):
                raise OrderSocketError(f"{where}: another process serves it")
            self.path.unlink(missing_ok=True)  # a socket left by a process that is gone
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)  # before it listens: nobody else connects, ever
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise OrderSocketError(f"{where}: {exc.strerror or exc}") from exc
        self._listener = sock
        made = self.path.lstat()
        self._made = (made.st_dev, made.st_ino)
        return self

    def start(self) -> OrderSocket:
        if self._listener is None:
            self.bind()
        if self._acceptor is None:
            self._acceptor = threading.Thread(target=self._accept, name="riskgate-order-socket", daemon=True)
            self._acceptor.start()
            log.info("order_socket_serving", path=str(self.path))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping.set()  # no connection is taken after this
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        with self._lock:
            open_now = list(self._open.values())
        for conn, _ in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes its thread's read
        deadline = _real_monotonic() + timeout
        for _, thread in open_now:
            thread.join(max(0.0, deadline - _real_monotonic()))
        if self._acceptor is not None:
            self._acceptor.join(max(0.0, deadline - _real_monotonic()))
            self._acceptor = None
        with contextlib.suppress(OSError):
            now = self.path.lstat()
            if self._made == (now.st_dev, now.st_ino):  # its own socket only: never another's at this path
                self.path.unlink()
        self._made = None

    def _accept(self) -> None:
        listener = self._listener
        failing = False
        while listener is not None and not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return  # closed by stop()
                # Out of file descriptors (EMFILE), say: the connection waits in the backlog; try again
                # soon, said once per streak (a listener that stopped taking connections is an outage).
                if not failing:
                    log.error("order_socket_accept_failed", path=str(self.path), error=repr(exc))
                failing = True
                self._stopping.wait(_ACCEPT_RETRY_S)
                continue
            failing = False
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                full = len(self._open) >= self._service.config.api.max_connections
                if not full:
                    thread = threading.Thread(target=self._serve, args=(conn,), name="riskgate-order-conn", daemon=True)
                    self._open[id(conn)] = (conn, thread)
                    thread.start()  # under the lock: stop() sees it started, or not at all
            if full:
                _refuse(conn, _line(503, "too many connections (api.max_connections): try again"))

    def _serve(self, conn: socket.socket) -> None:
        api = self._service.config.api
        lines = _Lines(conn, MAX_BODY_BYTES, api.order_socket_idle_s, api.request_timeout_s)
        try:
            raw = lines.next()
            token = _token_of(raw)
            authorization = [] if token is None else [f"Bearer {token}"]
            if token is not None:  # the hello: answered, and the next line is the first order
                refused = self._refusal(authorization)
                _send(conn, refused or _hello(self._keeper.who(authorization, "client")))
                if refused is not None:
                    return
                raw = lines.next()
            while not self._stopping.is_set():
                refused = self._refusal(authorization)
                if refused is not None:
                    _send(conn, refused)
                    return
                status, payload = evaluate_line(self._service, raw, self._keeper.scope(authorization))
                _send(conn, payload + b"\n" if status == 200 else _line(status, _detail(payload)))
                raw = lines.next()
        except OverflowError:
            with contextlib.suppress(_ClosedError):
                _send(conn, _line(413, f"a line longer than {MAX_BODY_BYTES} bytes: connection closed"))
        except _ClosedError:
            pass
        except Exception as exc:  # one connection's fault ends it, never the socket
            log.exception("order_socket_connection_failed", error=repr(exc))
        finally:
            with self._lock:
                self._open.pop(id(conn), None)
            conn.close()

    def _refusal(self, authorization: list[str]) -> bytes | None:
        """A 401 or 403 line (journaled) when the connection's token is not a client's now."""
        if self._service.config.api.execution_access != "token" or self._keeper.who(authorization, "client"):
            return None
        known = self._keeper.who(authorization, "reader")
        self._keeper.refused(authorization, "LINE", str(self.path), "order_socket", known)
        if known is not None:
            return _line(403, f"the token is {known}'s, an operator's: an execution client's token is required")
        return _line(401, 'the first line must be {"token": "..."}, an execution client\'s ([api.clients])')


def _hello(client: str | None) -> bytes:
    return _json_line({"status": 200, "client": client})


def _token_of(raw: bytes) -> str | None:
    """The token of a hello line (`{"token": "..."}`, nothing else), or None: not a hello."""
    try:
        hello = read_json(raw)  # as the API reads a body: a key twice too is refused (which token was meant?)
    except ValueError:
        return None
    if type(hello) is not dict or set(hello) != {"token"} or type(hello["token"]) is not str:
        return None
    token: str = hello["token"]
    return token


def _detail(payload: bytes) -> str:
    body: Any = json.loads(payload)
    return str(body.get("detail", "")) if type(body) is dict else ""


def _send(conn: socket.socket, data: bytes) -> None:
    try:
        conn.settimeout(_SEND_S)  # a peer that stops reading its answers is dropped
        conn.sendall(data)
    except OSError as exc:
        raise _ClosedError from exc


def _refuse(conn: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.settimeout(1.0)
        conn.sendall(data)
    conn.close()


def _served(path: Path) -> bool:
    """Whether a process accepts connections at the socket `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
