"""What actors.mailbox relies on in pykka: if an upgrade changes it, this fails."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from actors.mailbox import drain_mailbox


class _Probe(pykka.ThreadingActor):
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
        drain_mailbox(self, lambda m: self.drained.append(m) or m == "tell-me")


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


def test_an_empty_mailbox_drains_to_nothing():
    drained: list[object] = []
    entered, release = threading.Event(), threading.Event()
    ref = _Probe.start(entered, release, drained)
    ref.stop()
    assert drained == []
