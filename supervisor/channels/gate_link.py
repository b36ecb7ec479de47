"""GateLink: the one wire from every state source to the gate.

Sources and the facade `tell` state and reports through it. It stamps each
state with the monotonic time it was sent (the gate ages state from that
stamp, not from when it was applied), posts it to the gate (which applies it
before it next decides: supervisor.gate), and keeps the latest state of each
kind, whose ages the health log, the state API and the alerts read without
the gate.
"""

from __future__ import annotations

import threading
from typing import NamedTuple, Protocol

from supervisor.clock import Clock
from supervisor.core.messages import (
    AccountState,
    EssState,
    Override,
    PriceSnapshot,
    ReduceOnlyMode,
    RiskSignal,
    SharedState,
)

__all__ = ["GateLink", "Latest", "StateSink"]


class StateSink(Protocol):
    """Where state goes (the `Gate`): never waits."""

    def post(self, message: object, received: float) -> None: ...


class Latest(NamedTuple):
    """The latest state of a kind and when it was sent (monotonic)."""

    message: object
    sent: float


def _older(message: object, previous: Latest | None) -> bool:
    held = previous.message if previous is not None else None
    return isinstance(message, RiskSignal) and isinstance(held, RiskSignal) and message.timestamp < held.timestamp


def _cache_key(message: object) -> tuple[str, str] | None:
    if isinstance(message, RiskSignal):
        return ("risk_v3", "")
    if isinstance(message, EssState):
        return ("ess", "")
    if isinstance(message, AccountState):
        return ("account", message.account)
    if isinstance(message, Override):
        return ("override", message.account)
    if isinstance(message, SharedState):
        return ("shared", "")
    if isinstance(message, ReduceOnlyMode):
        return ("reduce_only_mode", "")
    if isinstance(message, PriceSnapshot):
        return ("prices", "")
    return None


class GateLink:
    def __init__(self, clock: Clock, gate: StateSink) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._gate = gate
        self._latest: dict[tuple[str, str], Latest] = {}

    def tell(self, message: object) -> None:
        """Post to the gate (never waits); remember it if it is state."""
        key = _cache_key(message)
        if key is None:  # a report (fill, outcome, message sent)
            self._gate.post(message, self._clock.monotonic())
            return
        with self._lock:  # remembered and posted in one order
            sent = self._clock.monotonic()
            previous = self._latest.get(key)
            # An account state from a fill keeps the age of the snapshot it came from.
            if isinstance(message, AccountState) and not message.refreshed and previous is not None:
                sent = previous.sent
            if not _older(message, previous):  # a lagging signal is not the latest
                self._latest[key] = Latest(message, sent)
            self._gate.post(message, sent)

    def latest(self, kind: str, name: str = "") -> Latest | None:
        """The latest state of a kind and when it was sent (monotonic), or None."""
        with self._lock:
            return self._latest.get((kind, name))

    def age(self, kind: str, name: str = "", now: float | None = None) -> float | None:
        """Age of the latest state of a kind ("risk_v3", "ess", "account")."""
        with self._lock:
            entry = self._latest.get((kind, name))
        if entry is None:
            return None
        return (self._clock.monotonic() if now is None else now) - entry.sent

    def account_ages(self) -> dict[str, float]:
        now = self._clock.monotonic()
        with self._lock:
            return {name: now - received for (kind, name), (_, received) in self._latest.items() if kind == "account"}

    def snapshot(self) -> list[Latest]:
        """The latest state of every kind, in the order first sent."""
        with self._lock:
            return list(self._latest.values())

    def latest_accounts(self) -> list[AccountState]:
        with self._lock:
            return [m for m, _ in self._latest.values() if isinstance(m, AccountState)]
