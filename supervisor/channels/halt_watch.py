"""HaltWatch: the gate says a halt began; listeners act on a thread of their own.

The gate calls `began(reason)` when the ESS state it holds turns active (any
source: the ESS service, the kill-switch file, the operator halt). That is one
queue put: the gate never waits on what listeners do (the guarded clients
cancel their resting orders at their exchanges). Listeners run in order on the
watch's thread; one that raises is logged and the others still run.
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
        self.delivered = 0  # halts handed to every listener (for tests and health)

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def began(self, reason: str) -> None:
        """From the gate's thread: never blocks."""
        self._queue.put(reason)

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
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(reason)
                except Exception as exc:  # noqa: BLE001 - one listener must not stop the others
                    log.error("halt_listener_failed", error=f"{type(exc).__name__}: {exc}")
            self.delivered += 1
