"""GateActor: answers every evaluation from in-memory state, never doing I/O.

Orders arrive as `EvaluateOrder` (validated on the caller's thread) or
`RejectOrder` (why it is invalid). State arrives through the `GateLink`, each
message `Stamped` with when it was sent (RiskSignal, EssState, AccountState),
and as Fill, OrderOutcome and Override; ESS also through the shared
`EssBoard`, read at the start of every evaluation so a halt reaches orders
already queued here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from actors.base import SupervisedActor
from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_counters import GateCounters
from supervisor.channels.gate_door import GateDoor
from supervisor.channels.gate_link import Stamped
from supervisor.channels.halt_watch import HaltWatch
from supervisor.channels.inbox import GateInbox, drain_inbox
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.checks import FRESH_SOURCES, STALE_SOURCE, collar_pct, collar_reference
from supervisor.core.evaluate import block_result, decide, invalid_order
from supervisor.core.gate_state import GateState, Reservation
from supervisor.core.messages import (
    AccountState,
    ConfigChanged,
    EssState,
    EvaluateOrder,
    Fill,
    MessageSent,
    OrderOutcome,
    Override,
    RejectOrder,
    RiskGateResult,
    RiskSignal,
)
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from supervisor.logs import get_logger

__all__ = ["AccountView", "GateActor", "GateStatsRequest", "GateView", "GateViewRequest"]

log = get_logger("riskgate.gate")

# Expired reservations go to the journal as one event per this many, or this often.
_EXPIRED_BATCH = 1000
_EXPIRED_EVERY_S = 0.1


@dataclass(frozen=True, slots=True)
class GateStatsRequest:
    """Ask for the decision counts since the last request (and reset them)."""

    reset: bool = True


@dataclass(frozen=True, slots=True)
class GateViewRequest:
    """Ask for a `GateView` (for the state API: read once a second, not per order)."""


@dataclass(frozen=True, slots=True)
class AccountView:
    state: AccountState
    received: float  # monotonic
    gross_notional: float
    open_positions: int
    reserved_usd: float
    usable: bool


@dataclass(frozen=True, slots=True)
class GateView:
    """What the gate holds now, as references and plain numbers; formatted by the reader."""

    monotonic: float
    signal: RiskSignal | None
    signal_received: float
    accounts: dict[str, AccountView]
    reservations: int
    overrides: dict[str, tuple[str, float]]  # account -> (override id, expiry, monotonic)
    config_digest: str


class GateActor(SupervisedActor):
    # A faster mailbox that counts what is queued for the gate (see
    # supervisor.channels.inbox for what this relies on, gate_door for why).
    _create_actor_inbox = staticmethod(GateInbox)

    def __init__(
        self,
        config: Config,
        clock: Clock,
        ess_board: EssBoard,
        state: GateState | None = None,
        retired: threading.Event | None = None,
        journal: JournalQueue | None = None,
        counters: GateCounters | None = None,
        halts: HaltWatch | None = None,
        door: GateDoor | None = None,
    ) -> None:
        """`state` lets a restarted gate keep its predecessor's reservations and
        rate windows (see `GateState.carry_over`); upstream state is re-fed.
        `retired` is set when supervision replaces this gate (it stopped
        answering): from then on it approves nothing, whatever is still queued.
        `door` lets callers have their order decided on their own thread while
        nothing is queued here (supervisor.channels.gate_door); whoever runs
        the gate opens it once the gate has been fed."""
        super().__init__()
        self._retired = retired if retired is not None else threading.Event()
        # Every decision goes to the journal as one record of references; the
        # journal formats, writes and logs it on its own thread.
        self._journal = journal if journal is not None else JournalQueue(1, block_when_failing=False)
        self._counters = counters  # None: metrics off
        self._collar_pending: tuple[Any, Any] | None = None
        self._halts = halts  # told when a halt begins (the guarded clients cancel resting orders)
        self._failing_closed: set[tuple[str, str]] = set()  # (source, account) the gate blocks on now
        self._expired: list[dict[str, Any]] = []  # reservations expired, not yet journaled
        self._expired_since = 0.0
        self._config = config
        self._clock = clock
        self._board = ess_board
        self._state = state if state is not None else GateState()
        self._decisions: Counter[str] = Counter()
        self._ess_logged: bool | None = None
        self._older_signal_logged = False
        self._handlers: dict[type, Callable[[Any], Any]] = {
            EvaluateOrder: self._on_evaluate,
            RejectOrder: self._on_evaluate,
            # State and reports: one the gate cannot handle is refused (journaled), never
            # a crash: a restarted gate would be handed the same report again.
            Stamped: self._refusing(self._on_stamped),  # state, through the GateLink
            Fill: self._refusing(self._on_fill),
            OrderOutcome: self._refusing(self._on_outcome),
            GateStatsRequest: self._on_stats,
            GateViewRequest: self._on_view,
            MessageSent: self._refusing(self._on_message_sent),
            ConfigChanged: self._on_config,
        }
        self._inbox = cast("GateInbox", self.actor_inbox)
        self._door = door if door is not None else GateDoor()
        self._door.bind(self._inbox, self._decide_at_door)

    # -- pykka -------------------------------------------------------------
    def _handle_receive(self, message: Any) -> Any:
        # Every message the loop takes (ours, a proxy's call, a stop), holding
        # the door's lock: one decision or state change at a time, here or at
        # the door (supervisor.channels.inbox, point 4).
        door = self._door
        with door.lock:
            door.suspended = False  # handling again: a raise before did not kill it
            try:
                return super()._handle_receive(message)
            except BaseException:
                door.suspended = True  # if this kills the gate, nothing passes the door meanwhile
                raise
            finally:
                self._inbox.handled()

    def on_receive(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("gate_unknown_message", message_type=type(message).__name__)
            return None
        return handler(message)

    def _refusing(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def handle(message: Any) -> None:
            try:
                handler(message)
            except Exception as exc:  # noqa: BLE001 - refused and journaled; the gate goes on
                kind = type(message.message if isinstance(message, Stamped) else message).__name__
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.error("gate_message_refused", message_type=kind, error=error)
                self._journal.event(self._clock.now(), "gate_message_refused", "gate", message_type=kind, error=error)

        return handle

    def release_resources(self) -> None:
        self._door.shut()
        self._journal_expired()
        self._answer_pending("gate stopped")

    def _answer_pending(self, why: str) -> None:
        """Evaluations still queued get GATE_UNAVAILABLE now, not at their timeout."""

        def answer(msg: object) -> bool:
            if not isinstance(msg, (EvaluateOrder, RejectOrder)) or msg.reply is None:
                return False
            result = block_result(RC.GATE_UNAVAILABLE, why, _order_id(msg), self._clock.now())
            try:
                msg.reply(result)
            except Exception as exc:  # noqa: BLE001 - the caller's loop may be gone
                log.warning("gate_reply_failed", error=repr(exc), order_id=result.order_id)
            return True

        drain_inbox(self.actor_inbox, answer, str(self))

    # -- evaluation --------------------------------------------------------
    def _on_evaluate(self, msg: EvaluateOrder | RejectOrder) -> RiskGateResult | None:
        result = self._answer(msg)
        reply = msg.reply
        if reply is not None:
            try:
                reply(result)
            except Exception as exc:  # noqa: BLE001 - e.g. the caller's event loop closed
                log.warning("gate_reply_failed", error=repr(exc), order_id=result.order_id)
        counters = self._counters
        if counters is not None:  # after the answer: counting never delays the caller
            self._count(counters, msg, result)
        return None if reply is not None else result

    def _decide_at_door(self, msg: EvaluateOrder | RejectOrder) -> RiskGateResult:
        """A decision on a caller's thread, holding the door's lock (see GateDoor)."""
        result = self._answer(msg)
        if (
            result.reason_code is not RC.GATE_UNAVAILABLE
            and msg.deadline is not None
            and self._clock.monotonic() > msg.deadline
        ):
            # The caller's timeout passed while it decided: it must hear what it would
            # have heard from a queued order. What it booked stays booked until it ends
            # or expires (the safe side).
            result = self._unavailable(msg, "decided after the caller's timeout")
        counters = self._counters
        if counters is not None:
            self._count(counters, msg, result)
        return result

    def _answer(self, msg: EvaluateOrder | RejectOrder) -> RiskGateResult:
        try:
            if self._retired.is_set():
                # Replaced while these waited: a successor holds the reservations now,
                # so an approval here would be counted by no one.
                return self._unavailable(msg, "this gate was replaced by a restarted one")
            if msg.deadline is not None and self._clock.monotonic() > msg.deadline:
                return self._unavailable(msg, "reached the gate after the caller's timeout")
            result = self._evaluate(msg)
            if self._retired.is_set():
                # Replaced while deciding (it stalled past its heartbeat): the successor's
                # copy of the state may lack this booking, so the answer is no. What it
                # booked here stays in the old state (the safe side).
                return self._unavailable(msg, "this gate was replaced while deciding")
            return result
        except Exception as exc:
            log.exception("gate_internal_error", error=repr(exc))
            return self._unavailable(msg, f"internal error: {type(exc).__name__}")

    def _unavailable(self, msg: EvaluateOrder | RejectOrder, why: str) -> RiskGateResult:
        """A GATE_UNAVAILABLE answer, counted and journaled (it books nothing)."""
        self._decisions[RC.GATE_UNAVAILABLE] += 1
        result = block_result(RC.GATE_UNAVAILABLE, why, _order_id(msg), self._clock.now())
        order = msg.order if isinstance(msg, EvaluateOrder) else None
        self._journal.decision(result, order, _account(msg))
        return result

    def _count(self, counters: GateCounters, msg: EvaluateOrder | RejectOrder, result: RiskGateResult) -> None:
        # Labels only from configured accounts: a hostile order must not mint series.
        account = _account(msg)
        label = account if account is not None and account in self._config.accounts.accounts else "other"
        latency = 0.0 if msg.sent is None else self._clock.monotonic() - msg.sent
        counters.count(result.decision, result.reason_code, label, latency)
        pending = self._collar_pending
        if pending is not None:
            self._collar_pending = None
            if collar_reference(pending[0], pending[1], self._state, self._clock.monotonic(), self._config) is None:
                counters.collar_unreferenced += 1

    def _evaluate(self, msg: EvaluateOrder | RejectOrder) -> RiskGateResult:
        st = self._state
        now = self._clock.monotonic()
        current = self._board.current
        if current is not None:
            st.ess, st.ess_received = current
        st.journal_blocking = self._journal.blocking
        if st.reservations:
            expired = self._expired
            for r in st.expire_reservations(now):
                if not expired:
                    self._expired_since = now
                expired.append({"account": r.account, "order_id": r.order_id, "notional": r.notional})
            if expired and (len(expired) >= _EXPIRED_BATCH or now - self._expired_since >= _EXPIRED_EVERY_S):
                self._journal_expired()
        if isinstance(msg, EvaluateOrder) and msg.config is not None and msg.config is not self._config:
            # Validated against a config that a reload has since replaced: again, against this one.
            valid = validate_order(msg.order, self._config)
            if isinstance(valid, str):
                msg = RejectOrder(valid, msg.order.order_id or "", msg.order.account, msg.reply, msg.deadline, msg.sent)
            else:
                msg = EvaluateOrder(valid, msg.reply, msg.deadline, msg.sent, self._config)
        if isinstance(msg, RejectOrder):
            ev = invalid_order(msg.why, msg.order_id, msg.account, st, self._config, now, self._clock.now())
        else:
            ev = decide(msg.order, st, self._config, now, self._clock.now())
        result = ev.result
        code = result.reason_code
        self._decisions[code] += 1
        order = ev.order
        account = _account(msg)
        book = st.books.get(account) if account is not None else None
        reserved = st.reserved_units_by_account.get(account, 0) if account is not None else None
        self._journal.decision(result, order, account, st.signal, book, reserved)
        if order is not None and result.decision != "block":
            # Approved orders only: a blocked one sent nothing (its id may come again), and
            # approvals are rate-limited per account, so the memory of them stays bounded.
            st.record_decided(order, now, self._config.gate.duplicate_window_s)
            if self._counters is not None:
                self._collar_pending = (order, book)  # looked at after the answer (_count)
        if code in STALE_SOURCE or self._failing_closed:
            self._note_fail_closed(code, account, result.reason)
        if order is not None and result.decision != "block":
            st.reserve(
                Reservation(
                    order_id=order.order_id or "",
                    account=order.account,
                    exchange=order.exchange,
                    key=(order.symbol, order.exchange),
                    notional=ev.reserve_notional,
                    opens_new=ev.opens_new,
                    expires=now + self._config.gate.reservation_ttl_s,
                    price=order.price,
                    reducing_qty=ev.reducing_qty,
                    quantity=result.adjusted_quantity,
                )
            )
            st.record_approval(order.account, now)
        return result

    def _journal_expired(self) -> None:
        """The reservations that expired since the last call, as one journal event
        (when outcomes stop arriving every approval expires: one record each would
        double the journal's work). The journal logs one line for it."""
        if self._expired:
            expired, self._expired = self._expired, []
            self._journal.event(
                self._clock.now(), "reservations_expired", "gate", None, count=len(expired), reservations=expired
            )

    def _note_fail_closed(self, code: RC, account: str | None, reason: str) -> None:
        """Journal the moment the gate starts, and stops, blocking for a stale source."""
        stale = STALE_SOURCE.get(code)
        if stale is not None:
            key = (stale, account or "") if stale == "account" else (stale, "")
            if key not in self._failing_closed:
                self._failing_closed.add(key)
                self._journal.event(self._clock.now(), "gate_fail_closed", key[0], key[1] or None, reason=reason)
        for source in FRESH_SOURCES.get(code, ()):
            key = (source, account or "") if source == "account" else (source, "")
            if key in self._failing_closed:
                self._failing_closed.discard(key)
                self._journal.event(self._clock.now(), "gate_recovered", key[0], key[1] or None)

    # -- state -------------------------------------------------------------
    def _on_stamped(self, stamped: Stamped) -> None:
        message = stamped.message
        if isinstance(message, RiskSignal):
            self._on_signal(message, stamped.received)
        elif isinstance(message, AccountState):
            self._state.put_account(message, stamped.received)
        elif isinstance(message, EssState):
            self._on_ess(message)  # its age is on the board
        elif isinstance(message, Override):
            self._on_override(message, stamped.received)

    def _on_signal(self, signal: RiskSignal, received: float) -> None:
        old = self._state.signal
        if old is not None and signal.timestamp < old.timestamp:
            # Evaluated before the one we hold (a lagging replica or cache): it
            # must not replace a newer verdict, say a CRITICAL with an INFO.
            if not self._older_signal_logged:
                log.warning(
                    "risk_v3_signal_older_ignored",
                    timestamp=signal.timestamp.isoformat(),
                    held=old.timestamp.isoformat(),
                    risk_level=signal.risk_level,
                    held_level=old.risk_level,
                )
                self._older_signal_logged = True
            return
        self._older_signal_logged = False
        self._state.signal = signal
        self._state.signal_received = received
        if old is None or old.risk_level != signal.risk_level:
            self._journal.event(
                self._clock.now(),
                "risk_level_changed",
                "risk_v3",
                risk_level=signal.risk_level,
                previous=old.risk_level if old else None,
                signal_timestamp=signal.timestamp,
                ess_action_required=signal.ess_action_required,
            )
            log.info(
                "risk_level_changed",
                risk_level=signal.risk_level,
                previous=old.risk_level if old else None,
                ess_action_required=signal.ess_action_required,
            )

    def _on_ess(self, ess: EssState) -> None:
        # Publishers put the newest ESS state on the board before telling us;
        # this ordered notification only logs changes. (Publishing it here could
        # put back an older state over a newer one.)
        if ess.active is True and self._ess_logged is not True and self._halts is not None:
            self._halts.began(ess.reason)  # one queue put: the cancels run on the watch's thread
        if ess.active != self._ess_logged:
            self._journal.event(
                self._clock.now(), "ess_changed", "ess", active=ess.active, previous=self._ess_logged, reason=ess.reason
            )
            log.info("gate_ess_state", active=ess.active, previous=self._ess_logged, reason=ess.reason)
            self._ess_logged = ess.active

    def _on_message_sent(self, msg: MessageSent) -> None:
        self._state.record_message(msg.account, self._clock.monotonic())

    def _on_fill(self, fill: Fill) -> None:
        config = self._config
        symbol = config.symbols.get(fill.symbol)
        if symbol is not None:  # a reference for the price collar, if near a mark riskgate saw
            self._state.record_fill_price(
                (fill.symbol, fill.exchange),
                fill.price,
                self._clock.monotonic(),
                config.accounts.max_age_s,
                collar_pct(symbol, config),
            )
        if fill.order_id:
            self._state.fill(fill.account, fill.order_id, fill.quantity)

    def _on_outcome(self, outcome: OrderOutcome) -> None:
        account = outcome.account
        if account is None:
            # Ids are per account: without one, only an id a single account holds is released.
            holders = self._state.accounts_holding(outcome.order_id)
            if len(holders) != 1:
                if holders:
                    log.warning("outcome_ambiguous", order_id=outcome.order_id, accounts=len(holders))
                return
            account = holders[0]
        st = self._state
        r = st.reservations.get((account, outcome.order_id))
        if outcome.status in ("open", "partially_filled"):
            if r is not None and not r.resting:
                st.mark_resting(account, outcome.order_id)  # it lives on at the exchange: no expiry
                # Journaled: a restarted process recalls the order as resting (ops.journal.recall).
                self._journal.event(self._clock.now(), "order_resting", "gate", account, order_id=outcome.order_id)
            return
        if r is None:
            return
        filled = outcome.filled_quantity
        if outcome.status == "filled" and filled <= 0:
            filled = r.quantity  # "filled" without a quantity: all of it
        if r.resting:
            self._journal.event(self._clock.now(), "order_ended", "gate", account, order_id=outcome.order_id)
        st.ended(account, outcome.order_id, filled, self._clock.monotonic(), self._config.gate.reservation_ttl_s)
        log.debug("reservation_released", order_id=outcome.order_id, status=outcome.status)

    def _on_override(self, override: Override, received: float) -> None:
        # The TTL runs from when it was sent: a restarted gate re-fed it keeps its end.
        # (Approval, expiry and revocation are journaled by OperatorControls.)
        if override.ttl_s > 0:
            self._state.overrides[override.account] = (override.override_id, received + override.ttl_s)
        else:
            self._state.overrides.pop(override.account, None)

    def _on_config(self, msg: ConfigChanged) -> str:
        old = self._config
        if msg.config is old:
            return old.digest  # told twice (a reload during a restart reaches the new gate both ways)
        self._config = msg.config
        self._journal.event(
            self._clock.now(), "config_reloaded", "riskgate", previous=old.digest or None, sha256=msg.config.digest
        )
        return msg.config.digest

    def _on_view(self, _req: GateViewRequest) -> GateView:
        self._journal_expired()  # the state API, metrics and alerts ask: expiries are journaled then too
        st = self._state
        accounts = {
            name: AccountView(
                state=book.state,
                received=book.received,
                gross_notional=book.gross_notional,
                open_positions=book.open_count,
                reserved_usd=st.reserved_usd(name),
                usable=book.usable,
            )
            for name, book in st.books.items()
        }
        return GateView(
            monotonic=self._clock.monotonic(),
            signal=st.signal,
            signal_received=st.signal_received,
            accounts=accounts,
            reservations=len(st.reservations),
            overrides=dict(st.overrides),
            config_digest=self._config.digest,
        )

    def _on_stats(self, req: GateStatsRequest) -> dict[str, Any]:
        self._journal_expired()
        st = self._state
        now = self._clock.monotonic()
        stats = {
            "decisions": {str(code): n for code, n in self._decisions.items()},
            "reservations": len(st.reservations),
            "accounts_with_state": len(st.books),
            "risk_level": st.signal.risk_level if st.signal else None,
            "risk_v3_age_s": now - st.signal_received if st.signal else None,
        }
        if req.reset:
            self._decisions.clear()
        return stats


def _order_id(msg: EvaluateOrder | RejectOrder) -> str:
    return msg.order_id if isinstance(msg, RejectOrder) else msg.order.order_id or ""


def _account(msg: EvaluateOrder | RejectOrder) -> str | None:
    return msg.account if isinstance(msg, RejectOrder) else msg.order.account
