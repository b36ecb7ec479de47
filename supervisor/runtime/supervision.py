"""Supervision: start actors in order, watch them, restart the dead, stop in reverse.

Every `supervision.check_interval_s` (on the injected clock) each actor is
pinged; one that is dead, or does not answer within `heartbeat_timeout_s`
(`actor_unresponsive`), is restarted, at once the first time and then with
exponential backoff up to `backoff_max_s`. A restart is counted and logged
(`actor_restarted`); `rows()` feeds the `actor_health` log.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pykka

from actors.base import take_failure
from supervisor.clock import Clock, Timer
from supervisor.config import SupervisionConfig
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger

__all__ = ["ActorSpec", "ActorStartError", "ActorSupervisor"]

log = get_logger("riskgate.supervision")


class ActorStartError(RiskgateError, RuntimeError):
    """An actor could not start; `cause` is what stopped it."""

    def __init__(self, actor: str, cause: str) -> None:
        super().__init__(f"{actor} failed to start: {cause}")
        self.actor = actor
        self.cause = cause


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str
    factory: Callable[[], pykka.ActorRef[Any]]
    # Runs on every (re)start, before the new ref is published (the gate's re-feed).
    on_started: Callable[[pykka.ActorRef[Any]], None] | None = None
    # Runs when an incarnation is given up on (dead or unresponsive), before any restart.
    on_given_up: Callable[[pykka.ActorRef[Any]], None] | None = None
    # Sent a Poll message every interval, whichever incarnation is running.
    poll: Callable[[], object] | None = None
    poll_interval_s: float | None = None
    state_age: Callable[[], Any] | None = None


class _PendingPoll(NamedTuple):
    """The poll an actor has not answered yet (at most one waits in its mailbox)."""

    ref: pykka.ActorRef[Any]
    answer: pykka.Future[Any]


@dataclass(slots=True)
class _Slot:
    spec: ActorSpec
    ref: pykka.ActorRef[Any] | None = None
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    started_at: float = 0.0
    next_attempt: float = 0.0
    dead: bool = False
    timers: list[Timer] = field(default_factory=list)
    poll_pending: _PendingPoll | None = None
    polls_skipped: int = 0


def _done(future: pykka.Future[Any]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:  # noqa: BLE001 - a poll that failed is done too
        return True
    return True


class ActorSupervisor:
    def __init__(self, clock: Clock, config: SupervisionConfig, events: Callable[..., object] | None = None) -> None:
        self._events = events  # events(kind, source, **detail): deaths and restarts, for the journal
        self._clock = clock
        self._config = config
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.RLock()  # checks come from a timer thread; stop from the owner
        self._timer: Timer | None = None
        self._stopped = False

    # -- life cycle -------------------------------------------------------------
    def start(self, specs: list[ActorSpec]) -> None:
        """Start each actor in order and ping it; raises (after stopping what
        started) if one cannot start."""
        self._stopped = False
        try:
            for spec in specs:
                slot = self._slots[spec.name] = _Slot(spec)
                self._start(slot)
                if spec.poll is not None and spec.poll_interval_s:
                    slot.timers.append(self._clock.call_every(spec.poll_interval_s, self._poller(slot), spec.name))
        except Exception:
            self.stop()
            raise
        self._timer = self._clock.call_every(self._config.check_interval_s, self.check, "supervision")

    def _start(self, slot: _Slot) -> None:
        ref = slot.spec.factory()
        try:
            ref.proxy().ping().get(timeout=self._config.heartbeat_timeout_s)
            if slot.spec.on_started is not None:
                slot.spec.on_started(ref)
        except pykka.ActorDeadError as exc:
            ref.stop(block=False)
            cause = take_failure(ref.actor_urn)
            raise ActorStartError(slot.spec.name, cause or f"stopped before answering a ping ({exc})") from exc
        except Exception:
            ref.stop(block=False)
            raise
        slot.ref = ref
        slot.dead = False
        slot.started_at = self._clock.monotonic()
        log.info("actor_started", actor=slot.spec.name)
        if slot.spec.poll is not None:
            self._poller(slot)()  # state now, not one interval from now

    def _poller(self, slot: _Slot) -> Callable[[], None]:
        def tick() -> None:
            ref = slot.ref
            if ref is None or slot.dead:
                return
            # At most one poll waits in an actor's mailbox: while an upstream is
            # slow, ticks are skipped rather than queued (a queue of polls would
            # delay pings and a stop by one fetch deadline each).
            pending = slot.poll_pending
            if pending is not None and pending.ref is ref and not _done(pending.answer):
                slot.polls_skipped += 1
                return
            make = slot.spec.poll
            if make is None:
                return
            with contextlib.suppress(pykka.ActorDeadError):  # dead: the next check restarts it
                slot.poll_pending = _PendingPoll(ref, ref.ask(make(), block=False))

        return tick

    def stop(self) -> None:
        """Stop watching, then stop every actor in reverse order of start."""
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for slot in reversed(list(self._slots.values())):
                for timer in slot.timers:
                    timer.cancel()
                if slot.ref is not None:
                    try:
                        slot.ref.stop(timeout=5)
                        log.info("actor_stopped", actor=slot.spec.name)
                    except pykka.ActorDeadError:
                        pass
                    except pykka.Timeout:
                        log.warning("actor_stop_timeout", actor=slot.spec.name)
            self._slots.clear()

    # -- watching ----------------------------------------------------------------
    def ref(self, name: str) -> pykka.ActorRef[Any] | None:
        slot = self._slots.get(name)
        return slot.ref if slot is not None else None

    def check(self) -> None:
        """Heartbeat every actor; restart the dead whose backoff has passed."""
        with self._lock:
            if self._stopped:
                return
            pings: dict[str, Any] = {}
            for name, slot in self._slots.items():
                if slot.dead or slot.ref is None:
                    continue
                if not slot.ref.is_alive():
                    self._died(slot, take_failure(slot.ref.actor_urn) or "stopped")
                    continue
                try:
                    pings[name] = slot.ref.proxy().ping()
                except pykka.ActorDeadError:
                    self._died(slot, take_failure(slot.ref.actor_urn) or "stopped")
            for name, future in pings.items():
                slot = self._slots[name]
                try:
                    future.get(timeout=self._config.heartbeat_timeout_s)
                except pykka.Timeout:
                    log.error("actor_unresponsive", actor=name, timeout_s=self._config.heartbeat_timeout_s)
                    self._died(slot, f"no answer to ping within {self._config.heartbeat_timeout_s}s")
                    if slot.ref is not None:
                        slot.ref.stop(block=False)  # if it ever wakes up, it stops
                except pykka.ActorDeadError:
                    self._died(slot, take_failure(slot.ref.actor_urn) if slot.ref else "stopped")
            now = self._clock.monotonic()
            for slot in self._slots.values():
                if not slot.dead and now - slot.started_at >= self._config.backoff_max_s:
                    slot.consecutive_failures = 0  # stable again: the next death restarts at once
                if slot.dead and now >= slot.next_attempt:
                    self._restart(slot, now)

    def _died(self, slot: _Slot, error: str | None) -> None:
        slot.dead = True
        if slot.spec.on_given_up is not None and slot.ref is not None:
            slot.spec.on_given_up(slot.ref)
        slot.last_error = error or "stopped"
        now = self._clock.monotonic()
        delay = self._backoff(slot.consecutive_failures)
        slot.consecutive_failures += 1
        slot.next_attempt = now + delay
        log.error("actor_died", actor=slot.spec.name, error=slot.last_error, restart_in_s=delay)
        if self._events is not None:
            self._events("actor_died", slot.spec.name, error=slot.last_error, restart_in_s=delay)

    def _backoff(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self._config.backoff_max_s, self._config.backoff_initial_s * 2 ** (failures - 1)))

    def _restart(self, slot: _Slot, now: float) -> None:
        try:
            self._start(slot)
        except Exception as exc:  # noqa: BLE001 - keep trying, with backoff
            slot.last_error = f"restart failed: {type(exc).__name__}: {exc}"
            delay = self._backoff(slot.consecutive_failures)
            slot.consecutive_failures += 1
            slot.next_attempt = now + delay
            log.error("actor_restart_failed", actor=slot.spec.name, error=slot.last_error, retry_in_s=delay)
            return
        slot.restarts += 1
        log.warning("actor_restarted", actor=slot.spec.name, restarts=slot.restarts, last_error=slot.last_error)
        if self._events is not None:
            self._events("actor_restarted", slot.spec.name, restarts=slot.restarts, last_error=slot.last_error)

    # -- health ---------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per actor: the fields of the `actor_health` event."""
        out = []
        with self._lock:
            for name, slot in self._slots.items():
                alive = bool(slot.ref is not None and not slot.dead and slot.ref.is_alive())
                age = slot.spec.state_age() if slot.spec.state_age is not None else None
                out.append(
                    {
                        "actor": name,
                        "alive": alive,
                        "restarts": slot.restarts,
                        "last_error": slot.last_error,
                        "state_age_s": age,
                        "polls_skipped": slot.polls_skipped,
                    }
                )
        return out
