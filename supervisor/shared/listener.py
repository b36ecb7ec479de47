"""ControlListener: LISTEN on the shared store's control channel, on a thread of its own.

Each NOTIFY (a halt, resume or override through any instance) calls `heard()`,
which asks the keeper for a round at once: that round reads the shared halt,
so a halt through one instance reaches every other in about one round trip.
The rounds every `store.poll_interval_s` are the fallback when the listening
connection is down (it reconnects by itself, once a second at most).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from supervisor.logs import get_logger
from supervisor.shared.db import SharedStoreError, connect, deadline, psycopg_module, said
from supervisor.shared.schema import HALT_CHANNEL

__all__ = ["ControlListener"]

log = get_logger("riskgate.shared")

_WAIT_S = 0.2  # one wait for a notification (a stop is seen after it)
_CHECK_EVERY_WAITS = 25  # the listening connection is asked to answer every this many waits (5 s at most)


class ControlListener:
    def __init__(self, dsn: str, instance: str, timeout_s: float, heard: Callable[[], None]) -> None:
        self._dsn = dsn
        self._instance = instance
        self._timeout_s = timeout_s
        self._heard = heard
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in effect (tests wait on it)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shared-store-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self._timeout_s + 2.0)

    def _run(self) -> None:
        psycopg = psycopg_module()
        failing = False
        while not self._stop.is_set():
            conn = None
            try:
                conn = connect(self._dsn, self._timeout_s, f"{self._instance}/listen")
                with deadline(conn, self._timeout_s):
                    conn.execute(f"LISTEN {HALT_CHANNEL}")
                self.listening.set()
                if failing:
                    log.info("shared_store_listening_again")
                    failing = False
                self._heard()  # whatever was missed while not listening
                waits = 0
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=_WAIT_S, stop_after=1):
                        self._heard()
                    waits += 1
                    if waits >= _CHECK_EVERY_WAITS:
                        # A connection that stopped answering hears nothing, silently: asked, within a deadline.
                        with deadline(conn, self._timeout_s):
                            conn.execute("SELECT 1")
                        waits = 0
            except (SharedStoreError, psycopg.Error) as exc:
                self.listening.clear()
                if not failing:
                    log.warning("shared_store_not_listening", error=said(exc), fallback="rounds every poll_interval_s")
                    failing = True
                self._stop.wait(1.0)
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
