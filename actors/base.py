"""What every riskgate actor shares: a `ping()` for heartbeats, and a record of
why it died for the supervisor's health log."""

from __future__ import annotations

import threading
from typing import Any

import pykka

__all__ = ["SupervisedActor", "take_failure"]

_failures: dict[str, str] = {}
_failures_lock = threading.Lock()


def take_failure(actor_urn: str) -> str | None:
    """The error that killed the actor with this urn, if it died of one (read once)."""
    with _failures_lock:
        return _failures.pop(actor_urn, None)


class SupervisedActor(pykka.ThreadingActor):
    def ping(self) -> str:
        return "pong"

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        with _failures_lock:
            _failures[self.actor_urn] = f"{exception_type.__name__}: {exception_value}"
        self.release_resources()

    def on_stop(self) -> None:
        self.release_resources()

    def release_resources(self) -> None:
        """Close what on_start opened. Called on stop and on failure."""
