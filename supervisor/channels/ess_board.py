"""The ESS board: the latest ESS state, readable by the gate without a message.

Evaluations wait in the gate's mailbox in arrival order. A halt sent as just
another message would be read only after every evaluation queued before it.
So ESS sources publish here first (one atomic reference swap) and then tell the
gate; the gate reads the board at the start of every evaluation, so a halt
reaches orders already waiting in its queue.
"""

from __future__ import annotations

from supervisor.core.messages import EssState

__all__ = ["EssBoard"]


class EssBoard:
    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: tuple[EssState, float] | None = None

    def publish(self, state: EssState, received: float) -> None:
        """Record `state`, received at monotonic time `received`."""
        self._current = (state, received)

    @property
    def current(self) -> tuple[EssState, float] | None:
        return self._current
