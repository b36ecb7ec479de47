"""The gate's inbox, and every use of pykka's internals, in one place.

The gate is a pykka `ThreadingActor`, used through pykka's public API except
here. What this module relies on (pykka 4.x), each checked by
tests/supervisor/channels/test_inbox.py so that an upgrade that changes it fails there:

1. `Actor._create_actor_inbox()` is the hook pykka calls to make an actor's
   mailbox, and pykka uses only `put`, `get` and `empty` on what it returns.
   `GateInbox` has only those (and `get_nowait`, for `drain_inbox`) around a
   C-implemented `queue.SimpleQueue`, which hands a message to the gate's
   thread several microseconds faster than `queue.Queue`'s Python-level locks.
2. Queued items are envelopes with `.message` and `.reply_to` (a pykka future
   for an ask, None for a tell), in arrival order.
3. `on_stop` / `on_failure` run on the actor's thread before pykka's own
   teardown, which answers the asks still queued (ActorDeadError) but cannot
   answer a tell that carries our own reply callback: `drain_inbox` does.
4. Every tell and ask, ours and pykka's own (a proxy's call, a stop), goes
   through the inbox's `put`, on the sender's thread, before `tell` returns;
   and the actor's loop hands every message it takes from the inbox to
   `Actor._handle_receive` (which calls `on_receive` for ours), on the actor's
   thread. `GateInbox` counts up in the first and the gate counts down by
   overriding the second (see supervisor.channels.gate_door for why).
"""

from __future__ import annotations

import _thread
import queue
from collections.abc import Callable
from typing import Any

import pykka

__all__ = ["GateInbox", "drain_inbox"]


class GateInbox:
    """A SimpleQueue inbox that knows how many messages are queued for the
    gate or being handled (`pending`): counted up in `put` on the sender's
    thread, down by the gate (`handled`) once it has handled one (point 4).
    Every message counts, pykka's own included, so nothing told before an
    order is ever behind it unnoticed."""

    __slots__ = ("_lock", "_queue", "pending")

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = _thread.allocate_lock()
        self.pending = 0

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self.pending += 1
        self._queue.put(envelope)

    def handled(self) -> None:
        with self._lock:
            self.pending -= 1

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._queue.get(block, timeout)

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()

    def empty(self) -> bool:
        return self._queue.empty()


def drain_inbox(inbox: Any, answer: Callable[[object], bool], actor: str) -> int:
    """Empty a stopping actor's mailbox (points 2 and 3): `answer(message)`
    handles the messages it knows (returns True); any other ask is failed with
    ActorDeadError at once. Returns how many messages were taken."""
    taken = 0
    while True:
        try:
            envelope = inbox.get_nowait()
        except queue.Empty:
            return taken
        taken += 1
        if answer(envelope.message):
            continue
        if envelope.reply_to is not None:
            dead = pykka.ActorDeadError(f"{actor} stopped")
            envelope.reply_to.set_exception((pykka.ActorDeadError, dead, None))
