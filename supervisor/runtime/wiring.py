"""The running system: which actors, in what order, wired how, watched by whom.

`Runtime` builds the actor specs (gate first, then the account tracker, then
the pollers), hands them to the `ActorSupervisor`, connects every source to the
gate through one `GateLink`, and logs health every `health.interval_s`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any, cast

import httpx
import pykka

from actors.account_tracker import AccountTrackerActor
from actors.base import Poll
from actors.ess_watcher import EssWatcherActor
from actors.gate import GateActor, GateStatsRequest, GateView, GateViewRequest
from actors.risk_poller import RiskV3PollerActor
from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_counters import GateCounters
from supervisor.channels.gate_door import GateDoor
from supervisor.channels.gate_link import GateLink
from supervisor.channels.halt_watch import HaltWatch
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.gate_state import GateState
from supervisor.core.messages import ConfigChanged
from supervisor.logs import get_logger
from supervisor.runtime.supervision import ActorSpec, ActorSupervisor

__all__ = ["Runtime"]

log = get_logger("riskgate.runtime")


class Runtime:
    # Which gate to run: tests put a subclass with test-only messages here.
    gate_actor_class: type[GateActor] = GateActor

    def __init__(
        self,
        config: Config,
        clock: Clock,
        transport: httpx.BaseTransport | None,
        poll_upstreams: bool,
        journal: JournalQueue | None = None,
        first: Sequence[ActorSpec] = (),
    ) -> None:
        """`journal` takes every decision and event; `first` are actors to start
        before the gate and stop after everything (the journal's writer)."""
        self.config = config
        self.clock = clock
        self.transport = transport
        self.poll_upstreams = poll_upstreams
        self.journal = journal if journal is not None else JournalQueue(1, block_when_failing=False)
        self.first = list(first)
        self.board = EssBoard()
        self.counters = GateCounters() if config.metrics.enabled else None
        self.halts = HaltWatch()
        self.link = GateLink(clock)
        self.supervisor = ActorSupervisor(clock, config.supervision, self.event)
        self._gate_state: GateState | None = None
        self._gate_retired = threading.Event()
        self.gate_door = GateDoor()  # the running gate's (a restarted gate gets a new one)
        self._gate_config = config  # what the newest gate was started with
        self._newest_gate: pykka.ActorRef[Any] | None = None

    # -- wiring -------------------------------------------------------------------
    def _gate_actor(self) -> pykka.ActorRef[GateActor]:
        # A restarted gate keeps its predecessor's reservations and rate windows.
        old = self.gate_door
        old.shut()
        # Copied holding the predecessor's lock when it can be had soon, so no decision
        # at its door is half-booked in the copy (one that books later is answered
        # GATE_UNAVAILABLE: its gate was retired before this copy).
        locked = old.lock.acquire(timeout=0.05)
        try:
            state = self._carried_over()
        finally:
            if locked:
                old.lock.release()
        self._gate_state = state
        self._gate_retired = threading.Event()
        door = self.gate_door = GateDoor()
        self._gate_config = self.config
        return self.gate_actor_class.start(
            self._gate_config,
            self.clock,
            self.board,
            state,
            self._gate_retired,
            self.journal,
            self.counters,
            self.halts,
            door,
        )

    def _carried_over(self, attempts: int = 5) -> GateState:
        if self._gate_state is None:
            return GateState()
        for attempt in range(attempts):
            try:
                return self._gate_state.carry_over()
            except RuntimeError:  # a stuck predecessor's thread changed a dict mid-copy: copy again
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def event(self, kind: str, source: str, account: str | None = None, **detail: Any) -> None:
        """An event for the journal (never waits)."""
        self.journal.event(self.clock.now(), kind, source, account, **detail)

    def _retire_gate(self, ref: pykka.ActorRef[Any]) -> None:
        # The gate stopped answering (or died): whatever it still holds queued, it
        # must not approve once it wakes; its successor is the only one counting.
        self._gate_retired.set()
        self.gate_door.shut()
        self.link.disconnect()

    def _connect_gate(self, ref: pykka.ActorRef[Any]) -> None:
        self._newest_gate = ref
        if self._gate_config is not self.config:
            # A reload landed while this gate started: `reconfigure` told its predecessor.
            ref.tell(ConfigChanged(self.config))
        resent = self.link.connect(ref)  # queued ahead of any evaluation
        self.gate_door.open()  # those are counted as queued: orders wait for them
        if resent:
            log.info("gate_refed", states=resent)

    def specs(self) -> list[ActorSpec]:
        cfg, clock, link, transport, journal = self.config, self.clock, self.link, self.transport, self.journal
        # Restart-only sections come from `cfg`; a restarted tracker gets the reloaded config.
        specs = [
            *self.first,
            ActorSpec(
                "gate",
                self._gate_actor,
                on_started=self._connect_gate,
                on_given_up=self._retire_gate,
                state_age=self._gate_ages,
            ),
            ActorSpec(
                "account_tracker",
                lambda: AccountTrackerActor.start(self.config, clock, link, transport, journal),
                poll=Poll,  # polls snapshots when snapshot_url is set; takes up operator-set baselines
                poll_interval_s=cfg.accounts.poll_interval_s,
                state_age=self._oldest_account_age,
            ),
        ]
        if self.poll_upstreams:
            specs += [
                ActorSpec(
                    "risk_v3_poller",
                    lambda: RiskV3PollerActor.start(cfg.risk_v3, clock, link, transport, journal),
                    poll=Poll,
                    poll_interval_s=cfg.risk_v3.poll_interval_s,
                    state_age=lambda: self.link.age("risk_v3"),
                ),
                ActorSpec(
                    "ess_watcher",
                    lambda: EssWatcherActor.start(cfg.ess, clock, link, self.board, transport, journal),
                    poll=Poll,
                    poll_interval_s=cfg.ess.poll_interval_s,
                    state_age=self._ess_age,
                ),
            ]
        return specs

    # -- life cycle -----------------------------------------------------------------
    def seed(self, state: GateState) -> None:
        """What the first gate starts from (the journal's recent approvals), before `start`."""
        if self._gate_state is None:
            self._gate_state = state

    def start(self) -> None:
        self.halts.start()
        self.supervisor.start(self.specs())

    def stop(self) -> None:
        self.gate_door.shut()
        self.link.disconnect()
        self.supervisor.stop()
        self.halts.stop()

    # -- health -----------------------------------------------------------------------
    def _ess_age(self) -> float | None:
        current = self.board.current
        return None if current is None else round(self.clock.monotonic() - current[1], 3)

    def _oldest_account_age(self) -> float | None:
        ages = self.link.account_ages()
        return round(max(ages.values()), 3) if ages else None

    def _gate_ages(self) -> dict[str, float | None]:
        risk = self.link.age("risk_v3")
        return {
            "risk_v3": None if risk is None else round(risk, 3),
            "ess": self._ess_age(),
            "oldest_account": self._oldest_account_age(),
        }

    def reconfigure(self, config: Config) -> None:
        """Swap a reloaded config in: the gate (between two evaluations), the
        tracker, and whatever a restart starts from now on."""
        self.config = config
        message = ConfigChanged(config)
        # The newest gate too: one starting now is not the supervisor's ref until it
        # answers its first ping, and `_connect_gate` may have looked at the old config.
        refs = [self.supervisor.ref("gate"), self._newest_gate, self.supervisor.ref("account_tracker")]
        for ref in dict.fromkeys(r for r in refs if r is not None):
            with contextlib.suppress(pykka.ActorDeadError):  # restarted from self.config
                ref.tell(message)

    def gate_view(self, timeout: float = 1.0) -> GateView | None:
        gate = self.supervisor.ref("gate")
        if gate is None:
            return None
        try:
            return cast("GateView", gate.ask(GateViewRequest(), timeout=timeout))
        except (pykka.ActorDeadError, pykka.Timeout):
            return None

    def gate_stats(self, reset: bool, timeout: float = 1.0) -> dict[str, Any] | None:
        gate = self.supervisor.ref("gate")
        if gate is None:
            return None
        try:
            return cast("dict[str, Any]", gate.ask(GateStatsRequest(reset=reset), timeout=timeout))
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
