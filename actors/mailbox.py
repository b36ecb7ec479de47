"""Every use of pykka's internals, in one place.

The actors use pykka's public API except here. What this module relies on
(pykka 4.x), each checked by tests/actors/test_mailbox.py so that an upgrade
that changes it fails there:

1. An actor's mailbox is `actor_inbox`, a queue with `get_nowait` (raising
   `queue.Empty`); queued items are envelopes with `.message` and
   `.reply_to` (a pykka future for an ask, None for a tell), in arrival order.
2. `on_stop` / `on_failure` run on the actor's thread before pykka's own
   teardown, which answers the asks still queued (ActorDeadError) but cannot
   answer a tell that carries our own reply callback: `drain_mailbox` does.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import pykka

__all__ = ["drain_mailbox"]


def drain_mailbox(actor: pykka.Actor, answer: Callable[[object], bool]) -> int:
    """Empty a stopping actor's mailbox: `answer(message)` handles the messages
    it knows (returns True); any other ask is failed with ActorDeadError at
    once. Returns how many messages were taken."""
    inbox: Any = actor.actor_inbox
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
