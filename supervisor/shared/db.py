"""Connections to the shared PostgreSQL store, each bounded by a deadline.

psycopg is an optional dependency (`pip install 'riskgate[postgresql]'`): it is
imported only here, only when the postgresql backend is used. Every
connection is in autocommit mode, named after its instance, with a server-side
statement timeout; `deadline` also cuts the connection's socket from another
thread when the call outlives its time, so a server (or a proxy in front of
it) that accepts and then never answers blocks nobody for longer than that.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

from supervisor.clock import SystemClock
from supervisor.errors import RiskgateError

__all__ = ["SchemaError", "SharedStoreError", "connect", "deadline", "psycopg_module"]


class SharedStoreError(RiskgateError):
    """The shared store cannot be used now (named cause): what needs it fails closed."""


class SchemaError(SharedStoreError):
    """The database's schema is missing, older or newer than this riskgate's."""


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise SharedStoreError(
            "store.backend = \"postgresql\" needs psycopg: pip install 'riskgate[postgresql]'"
        ) from exc
    return psycopg


def connect(dsn: str, timeout_s: float, name: str) -> Any:
    """An autocommit connection, or `SharedStoreError` saying why not (never the DSN:
    it may hold a password)."""
    psycopg = psycopg_module()
    statement_ms = max(1, int(timeout_s * 1000))

    def attempt() -> Any:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(2, math.ceil(timeout_s)),  # libpq's least, per attempt (SSL, then not: twice)
            application_name=f"riskgate:{name}"[:63],
            options=f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
        )

    try:
        return _within(attempt, timeout_s + 1.0)
    except psycopg.ProgrammingError as exc:  # the DSN does not parse: libpq quotes the part it choked on
        raise SharedStoreError(
            "cannot connect to the shared store: the DSN cannot be read as a libpq connection string"
            " (not shown: it may hold a password)"
        ) from exc
    except psycopg.Error as exc:
        raise SharedStoreError(f"cannot connect to the shared store: {_said(exc)}") from exc


def _within(attempt: Any, seconds: float) -> Any:
    """`attempt()` on a thread of its own, waited for `seconds` at most: libpq's connect
    timeout is per attempt and at least 2 s (a server that accepts and never answers took 4 s).
    One that outlives its time is left to finish on its own and its connection closed."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["conn"] = attempt()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        if not done.is_set():
            done.set()
            return
        late = box.get("conn")  # the caller gave up: nobody will use it
        if late is not None:
            with contextlib.suppress(Exception):
                late.close()

    worker = threading.Thread(target=run, name="shared-store-connect", daemon=True)
    worker.start()
    if not done.wait(seconds):
        done.set()
        if "conn" not in box and "error" not in box:
            raise SharedStoreError(f"cannot connect to the shared store within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["conn"]


def _said(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def said(exc: BaseException) -> str:
    """An error as one short line (psycopg's messages span several)."""
    return _said(exc)


time_monotonic = SystemClock().monotonic  # deadlines are real time, whatever clock drives the gate


class _Watchdog:
    """One thread for every deadline of the process: it sleeps until the earliest one and cuts
    the socket of a call still running then (a thread per call would cost one per statement)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Any]] = []  # (monotonic end, ticket, connection): a heap
        self._live: set[int] = set()
        self._tickets = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: Any, seconds: float) -> int:
        with self._cond:
            ticket = next(self._tickets)
            heapq.heappush(self._due, (time_monotonic() + seconds, ticket, conn))
            self._live.add(ticket)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="shared-store-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
            return ticket

    def disarm(self, ticket: int) -> None:
        with self._cond:
            self._live.discard(ticket)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._due and self._due[0][1] not in self._live:
                    heapq.heappop(self._due)  # ended in time: forgotten
                if not self._due:
                    self._cond.wait()
                    continue
                ends, ticket, conn = self._due[0]
                left = ends - time_monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._due)
                self._live.discard(ticket)
            _cut(conn)


def _cut(conn: Any) -> None:
    """Shut the connection's socket down: its call in progress fails at once."""
    with contextlib.suppress(Exception):
        fd = conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def deadline(conn: Any, seconds: float) -> Iterator[None]:
    """Run the block; past `seconds`, cut `conn`'s socket (its call then fails at once).
    With `conn` None (a connect in progress) nothing can be cut: libpq's own
    connect_timeout bounds it."""
    if conn is None:
        yield
        return
    ticket = _WATCHDOG.arm(conn, seconds)
    try:
        yield
    finally:
        _WATCHDOG.disarm(ticket)
