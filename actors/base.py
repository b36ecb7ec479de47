"""What every riskgate actor shares: a `ping()` for heartbeats and a record of
why it died for the supervisor's health log; and, for the polled sources, the
`Poll` handling and the httpx client they open on start and close on stop."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pykka

from actors.messages import Poll
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.sources.http import source_client

__all__ = ["PolledSourceActor", "SupervisedActor", "take_failure"]

_failures: dict[str, str] = {}
_failures_lock = threading.Lock()


def take_failure(actor_urn: str) -> str | None:
    """The error that killed the actor with this urn, if it died of one (read once)."""
    with _failures_lock:
        return _failures.pop(actor_urn, None)


def _record_failure(actor_urn: str, exception_type: Any, exception_value: Any) -> None:
    with _failures_lock:
        _failures[actor_urn] = f"{exception_type.__name__}: {exception_value}"


class SupervisedActor(pykka.ThreadingActor):
    # A program that forgets stop() still exits: nothing an actor holds needs
    # its thread to outlive the interpreter (SQLite commits are atomic).
    use_daemon_thread = True

    def ping(self) -> str:
        return "pong"

    def on_start(self) -> None:
        # pykka does not call on_failure when on_start raises; record the cause
        # here so that a failed start is reported with it, not as "stopped".
        try:
            self.open_resources()
        except Exception as exc:
            _record_failure(self.actor_urn, type(exc), exc)
            self.release_resources()
            raise

    def open_resources(self) -> None:
        """Open what the actor needs (files, clients). Runs on the actor's thread."""

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        _record_failure(self.actor_urn, exception_type, exception_value)
        self.release_resources()

    def on_stop(self) -> None:
        self.release_resources()

    def release_resources(self) -> None:
        """Close what open_resources opened. Called on stop and on failure."""


class PolledSourceActor(SupervisedActor):
    """A state source polled on a timer: `Poll` runs `poll()`; the httpx client it
    may open in `open_resources` (`open_client`) is closed on stop and on failure."""

    def __init__(
        self,
        clock: Clock,
        gate: GateLink,
        transport: httpx.BaseTransport | None,
        journal: JournalQueue | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._gate = gate  # where state goes: the running gate, through the link
        self._journal = journal
        self._transport = transport  # None: real HTTP; tests may give an httpx transport
        self._client: httpx.Client | None = None

    def event(self, kind: str, source: str, account: str | None = None, **detail: Any) -> None:
        """An event that explains decisions, for the journal (never waits)."""
        if self._journal is not None:
            self._journal.event(self._clock.now(), kind, source, account, **detail)

    def open_client(self, timeout_s: float) -> None:
        self._client = source_client(timeout_s, self._transport)

    def release_resources(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def on_receive(self, message: object) -> object:
        if isinstance(message, Poll):
            return self.poll()
        return self.on_message(message)

    def poll(self) -> object:
        raise NotImplementedError

    def on_message(self, message: object) -> object:
        """Messages other than Poll; none by default."""
        return None
