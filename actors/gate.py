"""GateActor: the gate's owner while it runs, and its mailbox.

The gate itself (state, decision, bookkeeping, lock) is the plain `Gate`
(supervisor.gate): callers decide on their own threads and state is posted
to it directly. This actor opens the gate when it starts and closes it when
it stops or dies (every order then blocks GATE_UNAVAILABLE until supervision
starts a new owner), answers the supervisor's heartbeats, applies posted state
on its timer (`Poll`), and decides the orders handed to it: an asyncio
caller's when the gate's lock is not free at once, any caller's while the gate
is suspended (one of this actor's handlers raised; the next message resumes).
State told to it is posted to the gate like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.base import SupervisedActor
from actors.mailbox import drain_mailbox
from actors.messages import Poll
from supervisor.core.messages import EvaluateOrder, RejectOrder, RiskGateResult
from supervisor.gate import BUSY, Gate
from supervisor.logs import get_logger

__all__ = ["GateActor"]

log = get_logger("riskgate.gate")

# How long an order handed to the actor may wait for the gate's lock (its caller's
# own timeout is checked by the gate against the order's deadline).
_QUEUED_WAIT_S = 60.0


class GateActor(SupervisedActor):
    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self._gate = gate
        self._handlers: dict[type, Callable[[Any], Any]] = {
            EvaluateOrder: self._on_evaluate,
            RejectOrder: self._on_evaluate,
            Poll: self._on_poll,
        }

    def open_resources(self) -> None:
        self._gate.open(self.actor_urn)

    def on_receive(self, message: Any) -> Any:
        gate = self._gate
        # Open again if a handler raised under an ask before (this actor lives on), unless
        # a stop has begun; not the owner: replaced (it stopped answering, and woke up).
        if not gate.resume(self.actor_urn):
            if isinstance(message, (EvaluateOrder, RejectOrder)):
                return self._reply(message, self._refused(message, "this gate's actor was replaced"))
            return None
        handler = self._handlers.get(type(message))
        if handler is None:
            if gate.applies(message):  # state told to the actor: posted like any other
                gate.post(message)
            else:
                log.warning("gate_unknown_message", message_type=type(message).__name__)
            return None
        try:
            return handler(message)
        except BaseException:
            # If this kills the actor (a tell), nothing is decided anywhere meanwhile.
            gate.close(self.actor_urn)
            raise

    def release_resources(self) -> None:
        self._gate.close(self.actor_urn)

        def answer(msg: object) -> bool:
            """Evaluations still queued get GATE_UNAVAILABLE now, not at their timeout."""
            if not isinstance(msg, (EvaluateOrder, RejectOrder)) or msg.reply is None:
                return False
            self._reply(msg, self._refused(msg, "gate stopped"))
            return True

        drain_mailbox(self, answer)

    def _on_poll(self, _poll: Poll) -> bool:
        return self._gate.tick()

    def _on_evaluate(self, msg: EvaluateOrder | RejectOrder) -> RiskGateResult | None:
        result = self._gate.decide(msg, _QUEUED_WAIT_S)
        if not isinstance(result, RiskGateResult):  # BUSY, or closed meanwhile
            result = self._refused(msg, "no answer from the gate" if result is BUSY else "gate closed")
        return self._reply(msg, result)

    def _refused(self, msg: EvaluateOrder | RejectOrder, why: str) -> RiskGateResult:
        if isinstance(msg, RejectOrder):
            return self._gate.unavailable(msg.order_id, msg.account, why)
        return self._gate.unavailable(msg.order.order_id or "", msg.order.account, why)

    @staticmethod
    def _reply(msg: EvaluateOrder | RejectOrder, result: RiskGateResult) -> RiskGateResult | None:
        reply = msg.reply
        if reply is None:
            return result  # an ask
        try:
            reply(result)
        except Exception as exc:  # noqa: BLE001 - e.g. the caller's event loop closed
            log.warning("gate_reply_failed", error=repr(exc), order_id=result.order_id)
        return None
