"""The ESS board: the latest ESS state, readable by the gate without a message.

Evaluations wait in the gate's mailbox in arrival order. A halt sent as just
another message would be read only after every evaluation queued before it.
So ESS readings are published here first and then told to the gate; the gate
reads the board at the start of every evaluation, so a halt reaches orders
already waiting in its queue.

The board keeps each source's latest reading (the watcher's HTTP endpoint and
kill-switch file, a host's pushed status, ...) and combines them: any source
halting halts, so a clear pushed by one source can never lift another's halt.
The combined state is as old as its oldest source. Auxiliary sources (the
operator halt) can halt, but never make ESS known on their own: until a real
source has reported, the board holds no state and orders block as stale.
"""

from __future__ import annotations

import threading

from supervisor.core.messages import EssSourceStatus, EssState

__all__ = ["EssBoard"]


class EssBoard:
    __slots__ = ("_active_since", "_auxiliary", "_current", "_lock", "_sources")

    def __init__(self, auxiliary: frozenset[str] = frozenset({"operator_halt"})) -> None:
        self._auxiliary = auxiliary
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[EssSourceStatus, float]] = {}
        self._current: tuple[EssState, float] | None = None
        self._active_since: float | None = None

    def publish(self, state: EssState, received: float) -> EssState:
        """Record the readings in `state` (one per source), received at monotonic
        time `received`; returns the combined state the gate now reads."""
        readings = state.sources or (EssSourceStatus("unnamed", None, state.reason or "no ESS source"),)
        with self._lock:
            for reading in readings:
                self._sources[reading.source] = (reading, received)
            combined = EssState.combine(tuple(r for r, _ in self._sources.values()))
            oldest = min(at for _, at in self._sources.values())
            if all(name in self._auxiliary for name in self._sources):
                return combined  # not ESS yet: nothing on the board
            self._current = (combined, oldest)  # one reference swap: the gate reads it without the lock
            if not combined.active:
                self._active_since = None
            elif self._active_since is None:
                self._active_since = received
        return combined

    @property
    def current(self) -> tuple[EssState, float] | None:
        return self._current

    @property
    def active_since(self) -> float | None:
        """Monotonic time of the reading that began the current halt (None: not halted)."""
        return self._active_since
