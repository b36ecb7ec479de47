"""GateDecider: answers orders. Never raises.

The order is validated on the caller's thread (pure, needs only the config),
then decided by the gate on the same thread, holding its lock
(supervisor.gate); while the gate is suspended it is handed to the gate's
actor with a one-shot reply. A caller's timeout that is not usable, an order
that cannot even be read, a gate not started or busy past the timeout: each is
a block with its reason code, journaled like every decision. With
`journal.durability = "commit"` an approval is answered once its record is
committed. The facade and the HTTP API both answer through it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pykka

from supervisor.channels.journal_queue import JournalQueue
from supervisor.channels.reply import ReplySlot
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.evaluate import block_result
from supervisor.core.messages import EvaluateOrder, RejectOrder, RiskGateResult, evaluate_order_message
from supervisor.core.orders import account_of, order_id_of, validate_order
from supervisor.core.reasons import ReasonCode as RC
from supervisor.core.values import plain_float, shorten
from supervisor.gate import BUSY, Gate
from supervisor.logs import get_logger

__all__ = ["MAX_EVALUATE_TIMEOUT_S", "GateDecider"]

log = get_logger("riskgate.supervisor")
_real_monotonic = time.monotonic  # the caller's wait is real time, whatever the clock

_SLICE_S = 0.05
MAX_EVALUATE_TIMEOUT_S = 60.0


class _LoopReply:
    """The reply of an order an asyncio caller handed to the gate's actor: delivered on
    the caller's loop with its journal seq. `gone` once the caller stopped waiting
    (cancelled, timed out): the gate then answers it without deciding it."""

    __slots__ = ("_deliver", "_loop", "_seq", "gone")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[RiskGateResult, int], None],
        seq: Callable[[], int],
    ) -> None:
        self._loop, self._deliver, self._seq = loop, deliver, seq
        self.gone = False

    def __call__(self, result: RiskGateResult) -> None:  # on the gate actor's thread, right after it decided
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, result, self._seq())


class GateDecider:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        gate: Gate,
        journal: JournalQueue,
        gate_actor: Callable[[], pykka.ActorRef[Any] | None],
    ) -> None:
        """`gate_actor` gives the gate's running actor (None: not started)."""
        self.config = config  # swapped by a reload (supervisor.system)
        self.clock = clock
        self.journal = journal
        self._gate = gate
        self._gate_actor = gate_actor
        self._commit = config.journal.durability == "commit"  # approvals answered once their record is committed

    def _unavailable(self, order: Any, why: str) -> RiskGateResult:
        """Journaled (the metrics count its record), and counted in the gate's health like its own decisions."""
        return self._gate.unavailable(order_id_of(order), account_of(order), f"gate unavailable: {why}")

    def _journaled(self, result: RiskGateResult, order: Any, counted: bool = True) -> RiskGateResult:
        """A decision made here, not by the gate, is journaled too (not `counted` by the metrics:
        it replaces an answer they counted already)."""
        self.journal.decision(result, None, account_of(order), counted=counted)
        return result

    def _wait_of(self, timeout: object) -> float | None:
        """The caller's timeout in seconds, or None when it is not a usable one.
        Checked before anything is sent: a NaN or endless timeout must not book
        a reservation the caller never hears of."""
        if timeout is None:
            return self.config.gate.evaluate_timeout_s
        wait = plain_float(timeout)
        if wait is None or not 0 < wait <= MAX_EVALUATE_TIMEOUT_S:
            return None
        return wait

    def _bad_timeout(self, order: Any, timeout: object) -> RiskGateResult:
        why = f"timeout must be a number of seconds in (0, {MAX_EVALUATE_TIMEOUT_S:g}], got {shorten(timeout)}"
        return self._journaled(block_result(RC.INVALID_ORDER, why, order_id_of(order), self.clock.now()), order)

    def _request(self, order: Any, reply: Any, wait: float) -> EvaluateOrder | RejectOrder:
        # Validation is pure and needs only the config: done here, on the
        # caller's thread, it keeps the gate's (serial) work short. The order is
        # read once, here; the gate gets the clean copy, or only why it is
        # invalid (and answers INVALID_ORDER with its state).
        config = self.config
        valid = validate_order(order, config)
        now = self.clock.monotonic()
        if isinstance(valid, str):
            return RejectOrder(valid, order_id_of(order), account_of(order), reply, now + wait, now)
        return evaluate_order_message(valid, reply, now + wait, now, config)

    def reject(self, order: Any, why: str, code: RC = RC.INVALID_ORDER) -> RiskGateResult:
        """A block decided before the gate: INVALID_ORDER for input that cannot even
        be read as an order (say, JSON with a key twice), CLIENT_NOT_PERMITTED for an
        API client's order of an account its token is not for. Journaled like every
        other decision."""
        return self._journaled(block_result(code, why, order_id_of(order), self.clock.now()), order)

    def evaluate(self, order: Any, timeout: float | None = None) -> RiskGateResult:
        """Decide one order (an `OrderRequest` or a mapping). Never raises.

        The gate's decision runs here, on the caller's thread, holding the
        gate's lock (supervisor.gate); while the gate is suspended the order
        is handed to its actor with a one-shot reply slot. No answer within
        `timeout` (default `gate.evaluate_timeout_s`) is a GATE_UNAVAILABLE block.
        """
        wait = self._wait_of(timeout)
        if wait is None:
            return self._bad_timeout(order, timeout)
        try:
            started = _real_monotonic()  # real time, as the waits below
            request = self._request(order, None, wait)
            here = self._gate.decide(request, wait)
            if here is not None:
                if here is BUSY:
                    return self._unavailable(order, f"no answer within {wait}s")
                if not self._commit:  # the common case: the answer at once (no seq to look up)
                    return cast("RiskGateResult", here)
                return self._committed(cast("RiskGateResult", here), order, started + wait, self._gate.decided_seq())
            gate = self._gate_actor()  # the gate is closed: its actor, if one runs, takes the order
            if gate is None:
                return self._unavailable(order, "not started")
            left = wait - (_real_monotonic() - started)
            if left <= 0:
                return self._unavailable(order, f"no answer within {wait}s")
            slot: ReplySlot[tuple[RiskGateResult, int]] = ReplySlot()
            decided_seq = self._gate.decided_seq

            def reply(result: RiskGateResult) -> None:  # on the gate actor's thread, right after it decided
                slot((result, decided_seq()))

            gate.tell(dataclasses.replace(request, reply=reply))
            # Wait in slices: if the gate's actor dies with our order queued, say so
            # within a slice instead of at the timeout.
            slices = max(1, math.ceil(left / _SLICE_S))
            answer = slot.wait(min(left, _SLICE_S))
            while answer is None and slices > 1 and gate.is_alive():
                slices -= 1
                answer = slot.wait(_SLICE_S)
        except pykka.ActorDeadError:
            return self._unavailable(order, "gate actor is not running")
        except Exception as exc:
            log.exception("evaluate_failed", error=repr(exc))
            return self._unavailable(order, type(exc).__name__)
        if answer is None:
            alive = gate.is_alive()
            return self._unavailable(order, f"no answer within {wait}s" if alive else "gate actor stopped")
        return self._committed(answer[0], order, started + wait, answer[1])

    def _without_commit(self, result: RiskGateResult, order: Any, seq: int) -> RiskGateResult | None:
        """The answer at once, or None: wait for the journal to commit record `seq`. Only
        approvals under journal.durability = "commit" wait (a block sends nothing to an
        exchange); one whose record was not even queued (seq 0: the queue was full) is
        not committed, whatever the journal says by the time it is asked."""
        if not self._commit or result.decision == "block":
            return result
        return self._not_committed(result, order) if seq <= 0 else None

    def _committed(self, result: RiskGateResult, order: Any, deadline: float, seq: int) -> RiskGateResult:
        """With journal.durability = "commit", an approval is answered once its record is committed."""
        now = self._without_commit(result, order, seq)
        if now is not None:
            return now
        done = threading.Event()
        if not self.journal.when_committed(seq, done.set):
            left = deadline - _real_monotonic()
            if left <= 0 or not done.wait(left):
                return self._not_committed(result, order)
        return result

    def _not_committed(self, result: RiskGateResult, order: Any) -> RiskGateResult:
        # What it booked stays booked until its outcome or its TTL (the safe side).
        why = f"the journal did not commit the decision within the caller's timeout (order {result.order_id})"
        # The approval's record was counted by the metrics already (they never go back): this block,
        # journaled after it, is not counted again.
        blocked = block_result(RC.JOURNAL_UNAVAILABLE, why, result.order_id, self.clock.now())
        return self._journaled(blocked, order, counted=False)

    async def _committed_async(self, result: RiskGateResult, order: Any, deadline: float, seq: int) -> RiskGateResult:
        now = self._without_commit(result, order, seq)
        if now is not None:
            return now
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:  # on the journal's thread
            if not loop.is_closed():  # a caller gone with its loop: nobody to wake
                loop.call_soon_threadsafe(lambda: None if done.done() else done.set_result(None))

        if not self.journal.when_committed(seq, wake):
            try:
                await asyncio.wait_for(done, max(0.0, deadline - _real_monotonic()))
            except TimeoutError:
                return self._not_committed(result, order)
        return result

    async def evaluate_async(self, order: Any, timeout: float | None = None) -> RiskGateResult:
        """`evaluate` for asyncio: the loop is never blocked while the gate decides."""
        loop = asyncio.get_running_loop()  # none: RuntimeError now, before anything is decided or booked
        wait = self._wait_of(timeout)
        if wait is None:
            return self._bad_timeout(order, timeout)
        started = _real_monotonic()
        try:
            request = self._request(order, None, wait)
            # Decided here when the gate's lock is free at once (never waiting on
            # the loop's thread); else handed to the gate's actor.
            here = self._gate.decide(request, None)
            if here is not None:
                if not self._commit:
                    return cast("RiskGateResult", here)
                seq = self._gate.decided_seq()
                return await self._committed_async(cast("RiskGateResult", here), order, started + wait, seq)
            gate = self._gate_actor()
            if gate is None:
                return self._unavailable(order, "not started")
            # Its reply comes on this loop (built only now: most orders are decided above).
            future: asyncio.Future[tuple[RiskGateResult, int]] = loop.create_future()

            def deliver(result: RiskGateResult, seq: int) -> None:
                if not future.done():
                    future.set_result((result, seq))

            reply = _LoopReply(loop, deliver, self._gate.decided_seq)
            gate.tell(dataclasses.replace(request, reply=reply))
        except pykka.ActorDeadError:
            return self._unavailable(order, "gate actor is not running")
        except Exception as exc:
            log.exception("evaluate_failed", error=repr(exc))
            return self._unavailable(order, type(exc).__name__)
        try:
            result, seq = await asyncio.wait_for(future, wait)
        except TimeoutError:
            reply.gone = True
            return self._unavailable(order, f"no answer within {wait}s")
        except asyncio.CancelledError:
            reply.gone = True  # not decided yet: it never will be (nothing booked that no one hears of)
            raise
        return await self._committed_async(result, order, started + wait, seq)
