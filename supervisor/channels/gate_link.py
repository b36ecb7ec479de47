"""GateLink: the one wire from every state source to the gate.

Sources and the facade `tell` state through it. It stamps each state with the
monotonic time it was sent (the gate ages state from that stamp, not from when
its thread got round to it), forwards it to whichever gate is running now (the
supervisor swaps it on a restart), and keeps the latest state of each kind, so
that a restarted gate is re-fed everything, at its original age, before it
sees an order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pykka

from supervisor.clock import Clock
from supervisor.core.messages import AccountState, EssState, Override, RiskSignal

__all__ = ["GateLink", "Stamped"]


@dataclass(frozen=True, slots=True)
class Stamped:
    """A state message and the monotonic time it was sent (for a re-feed: first sent)."""

    message: object
    received: float


def _older(message: object, previous: tuple[object, float] | None) -> bool:
    held = previous[0] if previous is not None else None
    return isinstance(message, RiskSignal) and isinstance(held, RiskSignal) and message.timestamp < held.timestamp


def _cache_key(message: object) -> tuple[str, str] | None:
    if isinstance(message, RiskSignal):
        return ("risk_v3", "")
    if isinstance(message, EssState):
        return ("ess", "")
    if isinstance(message, AccountState):
        return ("account", message.account)
    if isinstance(message, Override):
        return ("override", message.account)  # a restarted gate is re-fed the running override
    return None


class GateLink:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._gate: pykka.ActorRef[Any] | None = None
        self._latest: dict[tuple[str, str], tuple[object, float]] = {}

    def tell(self, message: object) -> bool:
        """Send to the running gate; remember it if it is state. False when no gate runs."""
        key = _cache_key(message)
        with self._lock:
            if key is not None:
                previous = self._latest.get(key)
                # An account state from a fill keeps the age of the snapshot it came from.
                keep_age = isinstance(message, AccountState) and not message.refreshed
                sent = previous[1] if keep_age and previous is not None else self._clock.monotonic()
                if not _older(message, previous):  # a lagging signal is not what a restarted gate is re-fed
                    self._latest[key] = (message, sent)
                message = Stamped(message, sent)
            gate = self._gate
        if gate is None:
            return False
        try:
            gate.tell(message)
            return True
        except pykka.ActorDeadError:
            return False

    def connect(self, gate: pykka.ActorRef[Any]) -> int:
        """Re-feed a (new) gate with every remembered state, then route to it.
        Returns how many states were re-sent."""
        with self._lock:
            latest = list(self._latest.values())
            for message, received in latest:
                gate.tell(Stamped(message, received))
            self._gate = gate
        return len(latest)

    def disconnect(self) -> None:
        with self._lock:
            self._gate = None

    def latest(self, kind: str, name: str = "") -> tuple[object, float] | None:
        """The latest state of a kind and when it was sent (monotonic), or None."""
        with self._lock:
            return self._latest.get((kind, name))

    def age(self, kind: str, name: str = "", now: float | None = None) -> float | None:
        """Age of the latest state of a kind ("risk_v3", "ess", "account")."""
        with self._lock:
            entry = self._latest.get((kind, name))
        if entry is None:
            return None
        return (self._clock.monotonic() if now is None else now) - entry[1]

    def account_ages(self) -> dict[str, float]:
        now = self._clock.monotonic()
        with self._lock:
            return {name: now - received for (kind, name), (_, received) in self._latest.items() if kind == "account"}

    def latest_accounts(self) -> list[AccountState]:
        with self._lock:
            return [m for m, _ in self._latest.values() if isinstance(m, AccountState)]
