"""Health events: what the running system looks like, in the log, at a fixed interval.

Every `health.interval_s` (on the injected clock): one `actor_health` event per
actor (alive, restarts, last_error, state_age_s, polls_skipped) and one
`readiness` event (ready, or what is missing: a source with no state yet or
stale), one `gate_stats` event (decisions per reason code since the previous
one, their total, reservations held) and one `journal_health` event (records queued,
written, dropped; why it cannot write; whether that blocks orders). It reads the runtime; it never sits on the decision
path (the gate answers one stats ask per interval).
"""

from __future__ import annotations

from collections.abc import Callable

from supervisor.clock import Clock, Timer
from supervisor.logs import get_logger
from supervisor.runtime.wiring import Runtime

__all__ = ["HealthLog"]

log = get_logger("riskgate.health")


class HealthLog:
    def __init__(
        self, runtime: Runtime, clock: Clock, interval_s: float, readiness: Callable[[], list[str]] | None = None
    ) -> None:
        self._runtime = runtime
        self._readiness = readiness
        self._clock = clock
        self._interval_s = interval_s
        self._timer: Timer | None = None

    def start(self) -> HealthLog:
        if self._timer is None:
            self._timer = self._clock.call_every(self._interval_s, self.log_now, "health")
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def log_now(self) -> None:
        """One `actor_health` event per actor, then `readiness`, `journal_health`, `gate_stats`."""
        for row in self._runtime.supervisor.rows():
            log.info("actor_health", **row)
        if self._readiness is not None:
            # "No state yet" is not healthy: the gate blocks every order until it arrives.
            missing = self._readiness()
            if missing:
                log.warning("readiness", ready=False, missing=missing)
            else:
                log.info("readiness", ready=True, missing=[])
        stats = self._runtime.gate_stats(reset=True)
        decisions = stats["decisions"] if stats else {}
        journal = self._runtime.journal
        log.info(
            "journal_health",
            queued=len(journal),
            written=journal.written,
            dropped=journal.dropped,
            problem=journal.problem,
            blocking=journal.blocking,
        )
        log.info(
            "gate_stats",
            gate_alive=stats is not None,
            decisions=decisions,
            total=sum(decisions.values()),
            reservations=stats["reservations"] if stats else None,
        )
