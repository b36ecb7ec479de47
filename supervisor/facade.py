"""RiskSupervisor: the one object an execution service holds.

It starts the actors, answers `evaluate` (never raising: an unavailable gate
is a `GATE_UNAVAILABLE` block), and takes the state the execution side knows
(account snapshots, fills, order outcomes) and the upstream states (Risk v3
signal, ESS) in the same frozen messages the source actors send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import httpx
import pykka

from actors.account_tracker import AccountTrackerActor
from actors.ess_watcher import EssWatcherActor
from actors.gate import GateActor, GateStatsRequest
from actors.risk_poller import Poll, RiskV3PollerActor
from supervisor.clock import Clock, SystemClock, Timer
from supervisor.config import Config
from supervisor.ess_board import EssBoard
from supervisor.evaluate import block_result
from supervisor.logs import get_logger
from supervisor.messages import (
    AccountSnapshot,
    AccountState,
    EssSourceStatus,
    EssState,
    EvaluateOrder,
    Fill,
    OrderOutcome,
    Override,
    RiskGateResult,
    RiskSignal,
)
from supervisor.orders import order_id_of, validate_order
from supervisor.reasons import ReasonCode as RC
from supervisor.reply import ReplySlot
from supervisor.upstream import parse_account_snapshot, parse_risk_signal

__all__ = ["RiskSupervisor"]

log = get_logger("riskgate.supervisor")


class RiskSupervisor:
    """Facade over the gate and its state actors (DESIGN.md section 2).

    State-reporting methods (all thread safe, none blocks on the gate):

    - `report_risk_signal(signal)`: a `RiskSignal` or a GlobalRiskSignal mapping.
    - `report_ess_state(state)`: an `EssState`; a halt reaches orders already
      queued at the gate. `report_ess_active(active, reason)` is a shorthand.
    - `report_account_snapshot(snapshot)`: an `AccountSnapshot` or a snapshot
      mapping; the tracker adds the day/week baselines and feeds the gate.
    - `report_fill(fill)`: moves positions and releases reserved notional.
    - `report_order_outcome(outcome)`: releases an order's reservation.
    - `approve_override(override)`: lets reduce-only orders through an ESS halt.
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        http_transport: httpx.BaseTransport | None = None,
        poll_upstreams: bool = True,
    ) -> None:
        """`poll_upstreams=False` starts only the gate and the account tracker:
        every state then comes through the `report_*` methods."""
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.http_transport = http_transport  # given to every HTTP source actor's client
        self.poll_upstreams = poll_upstreams
        self.ess_board = EssBoard()
        self._refs: dict[str, pykka.ActorRef] = {}
        self._timers: list[Timer] = []
        self._timeout = config.gate.evaluate_timeout_s

    @property
    def _gate(self) -> pykka.ActorRef | None:
        return self._refs.get("gate")

    @property
    def _tracker(self) -> pykka.ActorRef | None:
        return self._refs.get("account_tracker")

    @property
    def gate_ref(self) -> pykka.ActorRef | None:
        """The running gate's actor ref (None before start), for operators and tests."""
        return self._gate

    def actor_ref(self, name: str) -> pykka.ActorRef | None:
        """A running actor by name: gate, account_tracker, risk_v3_poller, ess_watcher."""
        return self._refs.get(name)

    # -- life cycle ----------------------------------------------------------
    def start(self) -> RiskSupervisor:
        """Start the actors in dependency order (the gate first), ping each, then
        poll every source once and keep polling at the configured intervals."""
        if self._gate is not None and self._gate.is_alive():
            return self
        cfg, transport = self.config, self.http_transport
        try:
            self._start("gate", GateActor, cfg, self.clock, self.ess_board)
            gate = self._refs["gate"]
            self._start("account_tracker", AccountTrackerActor, cfg, self.clock, gate, transport)
            if self.poll_upstreams:
                self._start("risk_v3_poller", RiskV3PollerActor, cfg.risk_v3, self.clock, gate, transport)
                self._start("ess_watcher", EssWatcherActor, cfg.ess, self.clock, gate, self.ess_board, transport)
                self._every(cfg.ess.poll_interval_s, "ess_watcher")
                self._every(cfg.risk_v3.poll_interval_s, "risk_v3_poller")
            if cfg.accounts.snapshot_url:
                self._every(cfg.accounts.poll_interval_s, "account_tracker")
        except Exception:
            self.stop()
            raise
        log.info("supervisor_started", accounts=len(cfg.accounts.accounts), actors=list(self._refs))
        return self

    def _start(self, name: str, actor: type[pykka.ThreadingActor], *args: Any) -> None:
        ref = actor.start(*args)
        self._refs[name] = ref
        ref.proxy().ping().get(timeout=5)

    def _every(self, interval_s: float, name: str) -> None:
        ref = self._refs[name]

        def tick() -> None:
            try:
                ref.tell(Poll())
            except pykka.ActorDeadError:
                pass  # stopped or being restarted: the next tick goes to whoever runs then

        tick()  # state now, not one interval from now
        self._timers.append(self.clock.call_every(interval_s, tick, name))

    def stop(self) -> None:
        """Stop polling, then the actors in reverse order of start."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for name, ref in reversed(list(self._refs.items())):
            try:
                ref.stop(timeout=5)
            except pykka.ActorDeadError:
                pass
            except pykka.Timeout:
                log.warning("actor_stop_timeout", actor=name)
        self._refs.clear()
        log.info("supervisor_stopped")

    def poll_now(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask every source to poll once and wait for it; returns what each got."""
        out: dict[str, Any] = {}
        for name in ("ess_watcher", "risk_v3_poller", "account_tracker"):
            ref = self._refs.get(name)
            if ref is not None and (name != "account_tracker" or self.config.accounts.snapshot_url):
                out[name] = ref.ask(Poll(), timeout=timeout)
        return out

    def __enter__(self) -> RiskSupervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- decisions -----------------------------------------------------------
    def _unavailable(self, order: Any, why: str) -> RiskGateResult:
        return block_result(RC.GATE_UNAVAILABLE, f"gate unavailable: {why}", order_id_of(order), self.clock.now())

    def _request(self, order: Any, reply: Any, wait: float) -> EvaluateOrder:
        # Validation is pure and needs only the config: done here, on the
        # caller's thread, it keeps the gate's (serial) work short. An invalid
        # order still goes to the gate, which answers INVALID_ORDER with its state.
        valid = validate_order(order, self.config)
        deadline = self.clock.monotonic() + wait
        if isinstance(valid, str):
            return EvaluateOrder(order, reply=reply, deadline=deadline)
        return EvaluateOrder(valid, reply=reply, deadline=deadline, validated=True)

    def evaluate(self, order: Any, timeout: float | None = None) -> RiskGateResult:
        """Decide one order (an `OrderRequest` or a mapping). Never raises.

        The gate is told the order with a one-shot reply slot and answers on
        its own thread; no answer within `timeout` (default
        `gate.evaluate_timeout_s`) is a GATE_UNAVAILABLE block.
        """
        gate = self._gate
        if gate is None:
            return self._unavailable(order, "not started")
        wait = timeout or self._timeout
        try:
            slot: ReplySlot[RiskGateResult] = ReplySlot()
            gate.tell(self._request(order, slot, wait))
            result = slot.wait(wait)
        except pykka.ActorDeadError:
            return self._unavailable(order, "gate actor is not running")
        except Exception as exc:  # noqa: BLE001 - the caller gets a block, never an exception
            log.exception("evaluate_failed", error=repr(exc))
            return self._unavailable(order, type(exc).__name__)
        if result is None:
            alive = gate.is_alive()
            return self._unavailable(order, f"no answer within {wait}s" if alive else "gate actor stopped")
        return result

    async def evaluate_async(self, order: Any, timeout: float | None = None) -> RiskGateResult:
        """`evaluate` for asyncio: the loop is never blocked while the gate decides."""
        gate = self._gate
        if gate is None:
            return self._unavailable(order, "not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RiskGateResult] = loop.create_future()

        def deliver(result: RiskGateResult) -> None:
            if not future.done():
                future.set_result(result)

        def reply(result: RiskGateResult) -> None:  # runs on the gate's thread
            loop.call_soon_threadsafe(deliver, result)

        wait = timeout or self._timeout
        try:
            gate.tell(self._request(order, reply, wait))
        except pykka.ActorDeadError:
            return self._unavailable(order, "gate actor is not running")
        except Exception as exc:  # noqa: BLE001
            log.exception("evaluate_failed", error=repr(exc))
            return self._unavailable(order, type(exc).__name__)
        try:
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            return self._unavailable(order, f"no answer within {wait}s")

    # -- state from the execution side and the upstreams ---------------------
    def _tell_gate(self, message: object) -> bool:
        gate = self._gate
        if gate is None:
            log.warning("state_dropped_gate_not_started", message_type=type(message).__name__)
            return False
        try:
            gate.tell(message)
            return True
        except pykka.ActorDeadError:
            log.warning("state_dropped_gate_dead", message_type=type(message).__name__)
            return False

    def report_risk_signal(self, signal: RiskSignal | Mapping[str, Any]) -> bool:
        """Push a Risk v3 signal. A mapping is parsed (`UpstreamError` if unusable)."""
        if not isinstance(signal, RiskSignal):
            signal = parse_risk_signal(signal)
        return self._tell_gate(signal)

    def report_ess_state(self, state: EssState) -> bool:
        """Publish an ESS state: on the board first (so queued orders see it),
        then as an ordered message."""
        self.ess_board.publish(state, self.clock.monotonic())
        return self._tell_gate(state)

    def report_ess_active(self, active: bool | None, reason: str = "", source: str = "manual") -> bool:
        return self.report_ess_state(EssState.combine((EssSourceStatus(source, active, reason),)))

    def report_account_snapshot(
        self, snapshot: AccountSnapshot | Mapping[str, Any], timeout: float = 5.0
    ) -> AccountState | None:
        """Push an account snapshot; returns the state the gate now has (or
        None when the tracker is down). The gate has it queued before this returns."""
        if not isinstance(snapshot, AccountSnapshot):
            snapshot = parse_account_snapshot(snapshot)
        return self._ask_tracker(snapshot, timeout)

    def report_fill(self, fill: Fill, timeout: float = 5.0) -> AccountState | None:
        """Push a (partial) fill: positions move, reserved notional is released."""
        return self._ask_tracker(fill, timeout)

    def report_order_outcome(self, outcome: OrderOutcome) -> bool:
        """Push an order's final outcome: its reservation is released."""
        return self._tell_gate(outcome)

    def approve_override(self, override: Override) -> bool:
        """Approve an emergency override (audited in the log)."""
        return self._tell_gate(override)

    def _ask_tracker(self, message: object, timeout: float) -> AccountState | None:
        tracker = self._tracker
        if tracker is None:
            log.warning("state_dropped_tracker_not_started", message_type=type(message).__name__)
            return None
        try:
            return cast("AccountState | None", tracker.ask(message, timeout=timeout))
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            log.warning("state_dropped_tracker_unavailable", message_type=type(message).__name__, error=repr(exc))
            return None

    # -- health ----------------------------------------------------------------
    def health(self, timeout: float = 1.0) -> dict[str, Any]:
        out: dict[str, Any] = {name: {"alive": ref.is_alive()} for name, ref in self._refs.items()}
        gate = self._gate
        if gate is not None and out["gate"]["alive"]:
            try:
                out["gate"].update(gate.ask(GateStatsRequest(reset=False), timeout=timeout))
            except (pykka.ActorDeadError, pykka.Timeout):
                out["gate"]["alive"] = False
        current = self.ess_board.current
        out["ess"] = {
            "active": current[0].active if current else None,
            "age_s": self.clock.monotonic() - current[1] if current else None,
        }
        return out
