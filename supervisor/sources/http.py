"""Bounded JSON fetches for the source actors, and log-once failure tracking.

`fetch_json` turns every way an HTTP fetch can go wrong into a `FetchError`
with a short, stable `kind` (timeout, connect, http_404, http_5xx, too_large,
not_json, ...), so an actor can log a cause once instead of once per poll.

httpx's timeouts bound each network operation, not the request: a server
that trickles one byte per read timeout holds a fetch for as long as it
likes. So every fetch also has a total deadline (connect, headers and body
together). A single watchdog thread shuts the fetch's socket down when its
deadline passes, which wakes the blocked read at once. The source clients
open a fresh connection per fetch (`source_client`), so the socket is always
known to the watchdog before the first byte is sent.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx

from supervisor.clock import SystemClock
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger

__all__ = ["MAX_BODY_BYTES", "FailureLog", "FetchError", "fetch_json", "source_client"]

MAX_BODY_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_real = SystemClock()  # a network deadline is real time, whatever clock drives the polls


class FetchError(RiskgateError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def source_client(timeout_s: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client for polling an upstream: per-operation timeouts of
    `timeout_s`, and no kept-alive connections (see the module docstring)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        transport=transport,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


class _Deadline:
    """One fetch's deadline: expired once it passes; its socket shut down then."""

    __slots__ = ("_lock", "_sock", "expired", "finished")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.expired = False
        self.finished = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        # httpx's "trace" extension: called by httpcore as the request goes.
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sock = sock
                    if self.expired:
                        _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> None:
        """The fetch is over: a later expiry touches nothing."""
        with self._lock:
            self.finished = True
            self._sock = None


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread expiring deadlines in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline, at: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (at, next(self._seq), deadline))
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, deadline = self._heap[0]
                wait = at - _real.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                deadline.expire()


_watchdog = _Watchdog()


def fetch_json(client: httpx.Client, url: str, deadline_s: float, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """GET `url` within `deadline_s` seconds in all, and decode its JSON body.
    Raises `FetchError`, never anything else."""
    deadline = _Deadline()
    ends = _real.monotonic() + deadline_s
    _watchdog.watch(deadline, ends)
    try:
        body = _fetch(client, url, deadline, ends, deadline_s, max_bytes)
    finally:
        deadline.finish()
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        raise FetchError("ambiguous_json", f"key {exc} appears twice in one object: which one holds?") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise FetchError("not_json", f"body is not JSON ({len(body)} bytes)") from exc
    except RecursionError as exc:
        raise FetchError("not_json", f"body nested too deeply ({len(body)} bytes)") from exc


class _DuplicateKeyError(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; an upstream that sends
    # {"active": true, "active": false} says two things, so neither is read.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(repr(key[:40]))
        out[key] = value
    return out


def _fetch(client: httpx.Client, url: str, deadline: _Deadline, ends: float, total: float, max_bytes: int) -> bytes:
    late = FetchError("timeout", f"no complete answer within {total}s in all: {url}")
    try:
        with client.stream("GET", url, extensions={"trace": deadline.trace}) as response:
            if response.status_code != 200:
                status = response.status_code
                kind = "http_404" if status == 404 else "http_5xx" if status >= 500 else f"http_{status}"
                raise FetchError(kind, f"HTTP {status} from {url}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError("too_large", f"body of {declared} bytes > {max_bytes}")
            body = bytearray()
            for chunk in response.iter_bytes(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("too_large", f"body over {max_bytes} bytes")
                if deadline.expired or _real.monotonic() > ends:
                    raise late
            return bytes(body)
    except FetchError:
        raise
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"{type(exc).__name__} after the configured timeout: {url}") from exc
    except Exception as exc:
        if deadline.expired:
            raise late from exc
        if isinstance(exc, httpx.ConnectError):
            raise FetchError("connect", f"cannot connect to {url}: {exc}") from exc
        if isinstance(exc, httpx.HTTPError):
            raise FetchError("transport", f"{type(exc).__name__}: {exc}") from exc
        raise FetchError("error", f"{type(exc).__name__}: {exc}") from exc


Events = Callable[..., object]  # events(kind, source, account=None, **detail), e.g. into the journal


class FailureLog:
    """Logs a source's failure once per cause, and its recovery once (and hands
    each to `events`, when given)."""

    def __init__(self, logger_name: str, source: str, events: Events | None = None) -> None:
        self._log = get_logger(logger_name)
        self._source = source
        self._cause: str | None = None
        self._events = events

    @property
    def cause(self) -> str | None:
        return self._cause

    def failed(self, cause: str, detail: str, **fields: Any) -> None:
        if cause != self._cause:
            self._cause = cause
            self._log.warning("source_failed", source=self._source, cause=cause, detail=detail, **fields)
            if self._events is not None:
                self._events("source_failed", self._source, cause=cause, detail=detail)

    def succeeded(self, **fields: Any) -> None:
        if self._cause is not None:
            self._log.info("source_recovered", source=self._source, previous_cause=self._cause, **fields)
            if self._events is not None:
                self._events("source_recovered", self._source, previous_cause=self._cause)
            self._cause = None
