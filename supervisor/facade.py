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
from actors.gate import GateActor, GateStatsRequest
from supervisor.clock import Clock, SystemClock
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
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.http_transport = http_transport  # for the HTTP source actors
        self.ess_board = EssBoard()
        self._gate: pykka.ActorRef | None = None
        self._tracker: pykka.ActorRef | None = None
        self._timeout = config.gate.evaluate_timeout_s

    @property
    def gate_ref(self) -> pykka.ActorRef | None:
        """The running gate's actor ref (None before start), for operators and tests."""
        return self._gate

    # -- life cycle ----------------------------------------------------------
    def start(self) -> RiskSupervisor:
        if self._gate is not None and self._gate.is_alive():
            return self
        try:
            self._gate = GateActor.start(self.config, self.clock, self.ess_board)
            self._gate.proxy().ping().get(timeout=5)
            self._tracker = AccountTrackerActor.start(self.config, self.clock, self._gate)
            self._tracker.proxy().ping().get(timeout=5)
        except Exception:
            self.stop()
            raise
        log.info("supervisor_started", accounts=len(self.config.accounts.accounts))
        return self

    def stop(self) -> None:
        for name, ref in (("account_tracker", self._tracker), ("gate", self._gate)):
            if ref is not None:
                try:
                    ref.stop(timeout=5)
                except pykka.ActorDeadError:
                    pass
                except pykka.Timeout:
                    log.warning("actor_stop_timeout", actor=name)
        self._tracker = None
        self._gate = None
        log.info("supervisor_stopped")

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
        out: dict[str, Any] = {}
        for name, ref in (("gate", self._gate), ("account_tracker", self._tracker)):
            out[name] = {"alive": bool(ref is not None and ref.is_alive())}
        if out["gate"]["alive"]:
            try:
                out["gate"].update(self._gate.ask(GateStatsRequest(reset=False), timeout=timeout))  # type: ignore[union-attr]
            except (pykka.ActorDeadError, pykka.Timeout):
                out["gate"]["alive"] = False
        current = self.ess_board.current
        out["ess"] = {
            "active": current[0].active if current else None,
            "age_s": self.clock.monotonic() - current[1] if current else None,
        }
        return out
