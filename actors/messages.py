"""The messages the actors' timers and owners send them (the state and orders
they carry are the frozen messages of supervisor.core.messages)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClearCooldown", "Flush", "Poll", "Tick"]


@dataclass(frozen=True, slots=True)
class Poll:
    """Time to poll (a source), or to apply what is posted (the gate): sent by the clock's timer."""


@dataclass(frozen=True, slots=True)
class Flush:
    """Write what the journal holds (sent every `journal.flush_interval_s`, and when callers wait)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time for the alerts to look (sent every `alerts.interval_s`)."""


@dataclass(frozen=True, slots=True)
class ClearCooldown:
    """An operator lifts an account's cooldown (`riskgate lockouts clear`): the account tracker
    records the clear (shared with other instances) and sends the account's state again."""

    account: str
    by: str
    reason: str
