"""The journal's SQLite work in a child process, behind `JournalWriter`'s interface.

The journal's thread shares the GIL with the callers deciding orders. SQLite
runs without the GIL, but each statement hands it back and must win it again
from callers that never wait, so at full speed a journal writing in its own
thread fell behind the gate (docs/benchmarks.md, section 8). With this writer
the journal's thread only turns records into rows (as before) and sends each
batch down a pipe; a child process binds and writes them and answers once the
transaction is committed. Only then are the records removed from the queue
(by seq), so a writer that dies, or takes or answers no batch in time (it is
killed then), loses nothing: the next one writes that batch again.

The child is a fresh interpreter running supervisor/journal/sqlite_file.py
alone (`python -I -S`: the standard library only, nothing of the caller's
program is imported again, no thread or lock of this process is copied).

Errors come back by class name: the sqlite3 errors and the row problems
(ValueError, TypeError, OverflowError) as themselves, anything else as
`sqlite3.OperationalError`, as does a writer that died or stopped answering;
a batch that cannot be pickled here is a ValueError (a row problem).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from supervisor.clock import SystemClock
from supervisor.journal import sqlite_file

__all__ = ["ProcessWriter"]

_START_TIMEOUT_S = 30.0  # an interpreter start and a quick_check of a large file
_ANSWER_TIMEOUT_S = 60.0  # a batch takes tens of ms; a disk stuck this long is a failure
_REBUILT = (ValueError, TypeError, OverflowError, OSError, MemoryError)
_REAL = SystemClock()  # timeouts are real time, whatever clock drives the journal's ticks


class ProcessWriter:
    """`JournalWriter` (write, prune, still_at_its_path, close) run by a child process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our file, a path argument
            [sys.executable, "-I", "-S", sqlite_file.__file__, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._process.stdin is not None  # noqa: S101 - PIPE above
        assert self._process.stdout is not None  # noqa: S101
        self._requests = os.dup(self._process.stdin.fileno())  # written with a deadline (_send)
        self._answers = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()
        try:
            self.identity = self._call(_START_TIMEOUT_S, "open")
        except BaseException:
            self.close()
            raise

    def write(
        self,
        decisions: list[tuple[Any, ...]],
        events: list[tuple[Any, ...]],
        inputs: list[tuple[Any, ...]] | None = None,
    ) -> None:
        self._call(_ANSWER_TIMEOUT_S, "write", decisions, events, inputs or ())

    def prune(self, before_us: int, limit: int = 1000) -> int:
        return int(self._call(_ANSWER_TIMEOUT_S, "prune", before_us, limit))

    def still_at_its_path(self) -> bool:
        return bool(sqlite_file.file_identity(self.path) == self.identity)

    def close(self) -> None:
        try:
            if self._process.poll() is None:
                self._call(5.0, "close")
        except sqlite3.Error:
            pass  # it is being closed: whatever it says now changes nothing
        finally:
            os.close(self._requests)  # its stdin: it ends if it has not yet
            self._answers.close()
            try:
                self._process.wait(5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5.0)

    def _call(self, timeout: float, op: str, *args: Any) -> Any:
        try:
            request = pickle.dumps((op, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a value that cannot be sent is its row's problem
            raise ValueError(f"cannot send to the journal writer: {type(exc).__name__}: {exc}") from exc
        ends = _REAL.monotonic() + timeout
        try:
            self._send(struct.pack("!i", len(request)) + request, ends)
            if not self._answers.poll(max(0.0, ends - _REAL.monotonic())):
                self._stuck(f"no answer to {op} within {timeout}s")
            status, value = self._answers.recv()
        except (EOFError, OSError) as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(0.5)
            code = self._process.returncode
            raise sqlite3.OperationalError(f"journal writer process is gone (exit code {code}): {exc!r}") from exc
        if status == "ok":
            return value
        raise _rebuilt(*value)

    def _send(self, data: bytes, ends: float) -> None:
        """All of `data` down its stdin by `ends` (a stopped child stops reading).
        One blocking write (one GIL release, not one per pipe-full), watched by a
        timer that kills the child if it is not done by then (the write then fails)."""
        watchdog = threading.Timer(max(0.0, ends - _REAL.monotonic()), self._kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._requests, view) :]
        except OSError:
            if not watchdog.is_alive():
                self._stuck(f"it took no request of {len(data)} bytes in time")
            raise
        finally:
            watchdog.cancel()  # a child it killed after the write ends the answer's wait (EOF)

    def _kill(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()

    def _stuck(self, why: str) -> NoReturn:
        self._kill()  # stuck (stopped, hung disk): its successor starts clean
        raise sqlite3.OperationalError(f"journal writer process: {why}")


def _rebuilt(kind: str, name: str, message: str) -> BaseException:
    if kind == "sqlite3":
        cls = getattr(sqlite3, name, None)
        if isinstance(cls, type) and issubclass(cls, sqlite3.Error):
            return cls(message)
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, _REBUILT):
        try:
            return cls(message)
        except TypeError:  # e.g. UnicodeEncodeError takes five arguments: its base says the same
            return ValueError(f"{name}: {message}") if issubclass(cls, ValueError) else OSError(message)
    return sqlite3.OperationalError(f"{name}: {message}")
