"""The ESS board: the latest ESS state, readable by the gate without a message.

ESS readings are published here first and then posted to the gate; the gate
reads the board at the start of every decision, so a halt reaches every order
decided after it was published, whatever else is still waiting to be applied.

The board keeps each source's latest reading (the watcher's HTTP endpoint and
kill-switch file, a host's pushed status, ...) and combines them: any source
halting halts, so a clear pushed by one source can never lift another's halt.
The combined state is as old as its oldest source. Auxiliary sources (the
operator halt) can halt, but never make ESS known on their own: until a real
source has reported, the board holds no state and orders block as stale.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from supervisor.core.messages import EssSourceStatus, EssState

__all__ = ["EssBoard", "EssReading"]


class EssReading(NamedTuple):
    """The combined ESS state and when it was read (monotonic: its oldest source's)."""

    state: EssState
    received: float


class EssBoard:
    __slots__ = ("_active_since", "_auxiliary", "_current", "_lock", "_sources")

    def __init__(self, auxiliary: frozenset[str] = frozenset({"operator_halt"})) -> None:
        self._auxiliary = auxiliary
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[EssSourceStatus, float]] = {}
        self._current: EssReading | None = None
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
            self._current = EssReading(combined, oldest)  # one reference swap: the gate reads it without the lock
            if not combined.active:
                self._active_since = None
            elif self._active_since is None:
                self._active_since = received
        return combined

    def restore(self, reading: EssReading) -> None:
        """Show `reading` as the current state (a replay puts back what the gate read)."""
        self._current = reading

    @property
    def current(self) -> EssReading | None:
        return self._current

    @property
    def active_since(self) -> float | None:
        """Monotonic time of the reading that began the current halt (None: not halted)."""
        return self._active_since
