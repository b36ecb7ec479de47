"""What supervisor.channels.inbox relies on in pykka: if an upgrade changes it, this fails."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervisor.channels.inbox import GateInbox, drain_inbox


class _Probe(pykka.ThreadingActor):
    _create_actor_inbox = staticmethod(GateInbox)

    def __init__(self, entered: threading.Event, release: threading.Event, drained: list[object]) -> None:
        super().__init__()
        self.entered, self.release, self.drained = entered, release, drained

    def on_receive(self, message: Any) -> Any:
        if message == "hold":
            self.entered.set()
            self.release.wait(5)
        return message

    def on_stop(self) -> None:
        # Runs before pykka's own teardown: what is still queued is ours to see.
        drain_inbox(self.actor_inbox, lambda m: self.drained.append(m) or m == "tell-me", str(self))


def test_the_inbox_hook_is_used_and_only_put_get_empty_are_needed():
    entered, release = threading.Event(), threading.Event()
    ref = _Probe.start(entered, release, [])
    try:
        assert isinstance(ref.actor_inbox, GateInbox)  # slotted: put, get, get_nowait, empty and no more
        assert ref.ask("ping", timeout=5) == "ping"
    finally:
        release.set()
        ref.stop()


def test_queued_envelopes_carry_message_and_reply_to_and_are_drained_before_teardown():
    entered, release = threading.Event(), threading.Event()
    drained: list[object] = []
    ref = _Probe.start(entered, release, drained)
    ref.tell("hold")
    assert entered.wait(5)
    stopped = ref.stop(block=False)  # queued first: what comes after it is never handled
    ref.tell("tell-me")
    asked = ref.ask("ask-me", block=False)
    release.set()
    stopped.get(timeout=5)
    assert drained[:2] == ["tell-me", "ask-me"]  # in arrival order
    with pytest.raises(pykka.ActorDeadError):
        asked.get(timeout=5)  # an ask the drain did not answer is failed at once, not left to time out


class _Counting(pykka.ThreadingActor):
    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def _handle_receive(self, message: Any) -> Any:
        self.seen.append(type(message).__name__)
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        return message

    def ping(self) -> str:
        return "pong"


def test_every_message_taken_from_the_inbox_passes_handle_receive():
    """Point 4: tells, asks, a proxy's call and the stop all pass `_handle_receive`
    on the actor's thread (GateActor counts its queued messages down there)."""
    seen: list[str] = []
    ref = _Counting.start(seen)
    ref.tell("told")
    assert ref.ask("asked", timeout=5) == "asked"
    assert ref.proxy().ping().get(timeout=5) == "pong"
    ref.stop()
    assert seen == ["str", "str", "ProxyCall", "_ActorStop"]
