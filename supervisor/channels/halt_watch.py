"""HaltWatch: the gate says a halt began; listeners act on a thread of their own.

The gate calls `began(reason)` when the ESS state it holds turns active (any
source: the ESS service, the kill-switch file, the operator halt). That is one
queue put: the gate never waits on what listeners do (the guarded clients
cancel their resting orders at their exchanges). Each listener runs on a
thread of its own: one that hangs (an exchange that never answers) or raises
never keeps the others from cancelling.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from supervisor.logs import get_logger

__all__ = ["HaltWatch"]

log = get_logger("riskgate.halts")

Listener = Callable[[str], None]


class HaltWatch:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._began = 0
        self._handed = 0
        self._running: list[threading.Thread] = []
        self._settled = threading.Condition(self._lock)

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def began(self, reason: str) -> None:
        """From the gate's thread: never blocks."""
        self._began += 1  # only the gate's thread writes it
        self._queue.put(reason)

    def settle(self, timeout: float) -> bool:
        """Wait until every halt told so far has been handed out and every
        listener has returned (what cancel-on-halt did is then done)."""
        with self._settled:
            return self._settled.wait_for(lambda: self._handed >= self._began and not self._running, timeout)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="riskgate-halts", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while (reason := self._queue.get()) is not None:
            with self._settled:
                for listener in list(self._listeners):
                    thread = threading.Thread(
                        target=self._call, args=(listener, reason), name="riskgate-halt-listener", daemon=True
                    )
                    self._running.append(thread)
                    thread.start()
                self._handed += 1
                self._settled.notify_all()

    def _call(self, listener: Listener, reason: str) -> None:
        try:
            listener(reason)
        except Exception as exc:  # noqa: BLE001 - logged; the other listeners run on their own threads
            log.error("halt_listener_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._settled:
                self._running.remove(threading.current_thread())
                self._settled.notify_all()
