"""Gate: the gate's state, its decision, its bookkeeping and its one lock, in plain Python.

Every decision and every change of the gate's state is a call of one of its
methods, holding `lock`:

- An order is decided on the caller's thread (`decide`). The gate's actor
  decides only the orders handed to it: an asyncio caller's when the lock is
  not free at once (the loop never waits for it), and any caller's while the
  gate is suspended (its actor's handler raised; the actor's next message
  resumes it).
- State and reports (`post`: a Risk v3 signal, an ESS state, an account state,
  an override, a fill, an outcome, a message sent, a reloaded config) never
  wait for the lock: they are queued here and applied, in the order posted, by
  whoever holds the lock next, before it reads anything (a decision, a view,
  the actor's tick), or at once when the lock is free, or by the holder as it
  releases it. So an order never overtakes state posted before `evaluate` was
  called, on any thread. Every taker waits for the lock the same way, spinning
  on the GIL's turn up to its own timeout: nobody waits for it without end.
- One state for the whole process: a supervision restart gives the gate a new
  owner (actor); nothing is copied, so no half-changed dict is ever carried
  over and every booking stays counted. A gate whose owner is stopped or given
  up on is closed (`close`): every order is GATE_UNAVAILABLE until a new owner
  opens it; a stop shuts it (`shut`) so that nothing starting meanwhile can.

The decision reads the ESS board (a halt overtakes everything), books, and
hands the journal and the metrics their records; it does no I/O and no
formatting beyond the result's own reason.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_counters import GateCounters
from supervisor.channels.halt_watch import HaltWatch
from supervisor.channels.journal_queue import JournalQueue, LeasesMeanwhile, Seeded
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.budget import REDUCE, cap_keys, qty_units, reduce_key, reduction_room
from supervisor.core.checks import FRESH_SOURCES, STALE_SOURCE, collar_pct, exposure_price
from supervisor.core.evaluate import block_result, decide, invalid_order
from supervisor.core.gate_state import UNITS_PER_USD, GateState, Reservation
from supervisor.core.messages import (
    AccountState,
    ConfigChanged,
    DecidedElsewhere,
    EssState,
    EvaluateOrder,
    Fill,
    LeaseHeld,
    MessageSent,
    OrderOutcome,
    OrderRequest,
    Override,
    PriceSnapshot,
    ReduceOnlyMode,
    RejectOrder,
    RiskGateResult,
    RiskSignal,
    SharedState,
)
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from supervisor.heap import give_back
from supervisor.logs import get_logger

__all__ = ["BUSY", "AccountView", "BudgetUsage", "Gate", "GateView", "Posted"]

log = get_logger("riskgate.gate")

BUSY: Final = "busy"  # the lock was not free within the caller's wait
_real_monotonic = time.monotonic  # a caller's wait is real time, whatever clock is injected

# Expired reservations go to the journal as one event per this many, or this often.
_EXPIRED_BATCH = 1000
_EXPIRED_EVERY_S = 0.1
# Posts waiting for the lock beyond this many are refused (only a lock held that long
# gets there; every order waits meanwhile) and the latest state of every kind is
# applied again instead (see `post`).
_MAX_PENDING = 100_000
_GIVE_BACK_AFTER = 20_000  # reservations ended since the most held: their memory goes back to the OS
_MAX_OUTBOX = 1_000_000  # ids approved here and not yet handed to the lease keeper (several instances)

Request = EvaluateOrder | RejectOrder
# State: the latest of each kind supersedes the earlier (what a resync applies again).
_STATE_KINDS = frozenset({RiskSignal, AccountState, EssState, Override, ConfigChanged, SharedState, PriceSnapshot})


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
    reduce_only_mode: str | None = None  # the operators' reduce-only halt, as the gate applies it
    # Repeated terms refused (account, symbol, side, quantity, price) -> until (monotonic).
    repeat_latches: dict[tuple[str, str, str, float, float], float] = field(default_factory=dict)
    # The price reference per symbol ([prices]): (price, fresh until, paused until (monotonic), why, stamped).
    prices: dict[str, tuple[float, float, float, str, datetime]] = field(default_factory=dict)
    prices_accepted: float = -math.inf  # monotonic: the last snapshot that priced a symbol
    prices_refused: str = ""  # why the last snapshot priced nothing


class BudgetUsage(NamedTuple):
    """One cap as the gate holds it (micro-USD): see `Gate.budget_usage`."""

    positions_units: int
    reserved_units: int
    refused_units: int  # cumulative
    lease: LeaseHeld | None
    cap: float | None = None  # a position's reduction budget: |position| (quantity); None: the config's cap
    wanted: int = 0  # a reduction budget: what orders want to close beyond what is in flight (units)


class Posted(NamedTuple):
    """State or a report posted to the gate, and when it was sent (monotonic)."""

    message: object
    received: float


class _Answered(NamedTuple):
    """A GATE_UNAVAILABLE answered without the lock: counted in the gate's health by the next holder
    (the metrics count its journal record)."""

    code: RC
    account: str | None


class Gate:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        board: EssBoard,
        journal: JournalQueue | None = None,
        counters: GateCounters | None = None,
        halts: HaltWatch | None = None,
        resync: Callable[[], list[Posted]] | None = None,
    ) -> None:
        """`resync` gives the latest state of every kind (and the running config): what
        the gate applies again after posts were refused because too many waited."""
        # Never taken with an endless wait (decisions spin up to their timeout, readers
        # give up after theirs, posts only try), so no thread can deadlock on it.
        self.lock = threading.Lock()
        # Deciders that found the lock taken: one at a time spins for it, the rest wait here, asleep.
        self._waiting_room = threading.Lock()
        self._held_peak = 0  # reservations held at most since memory was last given back (`tick`)
        self.memory_given_back = 0  # times it was
        self._pending: deque[Posted] = deque()  # posted, not yet applied (see the docstring)
        self._turns_wanted = 0  # readers waiting for the lock (see `_take_turn`); deciders only read it
        self._turns_lock = threading.Lock()
        self._lost = 0  # state posts refused since the last apply (the pending queue was full)
        self._reports_refused = 0  # report posts refused: reservations and rates unknown until a start
        self._resync = resync  # the latest state of every kind and the running config, after a loss
        self._owning = threading.Lock()  # open, close, shut: one at a time
        self._open = False
        self._shut = False
        self._owner: str | None = None
        self._config = config
        self._clock = clock
        self._board = board
        # Every decision goes to the journal as one record of references; the
        # journal formats, writes and logs it on its own thread.
        self._journal = journal if journal is not None else JournalQueue(1, block_when_failing=False)
        self._counters = counters  # None: metrics off
        self._halts = halts  # told when a halt begins (the guarded clients cancel resting orders)
        # Several instances: called (never waits) when an order found too little budget leased.
        self.on_budget_short: Callable[[], None] | None = None
        self._state = GateState()
        # With journal.durability = "commit" the caller waits for its decision's record:
        # the seq of the last one this thread took (a restart-only setting).
        self._track_seq = config.journal.durability == "commit"
        self._seqs = threading.local()
        self._decisions: Counter[str] = Counter()
        self._failing_closed: set[tuple[str, str]] = set()  # (source, account) the gate blocks on now
        self._expired: list[dict[str, Any]] = []  # reservations expired, not yet journaled
        self._expired_since = 0.0
        self._ess_logged: bool | None = None
        self._older_signal_logged = False
        self._unreferenced = False  # the last decision passed the collar with no reference price
        self._late = False  # the last decision came after its caller's timeout (`decide` answers GATE_UNAVAILABLE)
        self._marks_journaled: dict[str, tuple[float, float]] = {}  # symbol -> (price, monotonic) journaled
        self._board_seen: object = None  # the ESS board's reading last journaled as an input
        # State and reports: one the gate cannot apply is refused (journaled), never a crash.
        self._appliers: dict[type, Callable[[Any, float], None]] = {
            RiskSignal: self._on_signal,
            PriceSnapshot: self._on_prices,
            AccountState: self._on_account,
            EssState: self._on_ess,
            Override: self._on_override,
            Fill: self._on_fill,
            OrderOutcome: self._on_outcome,
            MessageSent: self._on_message_sent,
            ConfigChanged: self._on_config,
            SharedState: self._on_shared,
            ReduceOnlyMode: self._on_reduce_only_mode,
            DecidedElsewhere: self._on_decided_elsewhere,
            LeasesMeanwhile: self._on_leases_meanwhile,
            _Answered: self._on_answered,
        }

    # -- ownership (a small lock of its own: never the gate's) -------------------------
    def open(self, owner: str) -> None:
        """`owner` (the running actor) lets orders in, unless the gate is shut
        (a stop has begun: no actor starting meanwhile can undo it)."""
        with self._owning:
            if not self._shut:
                self._owner = owner
                self._open = True

    def resume(self, owner: str) -> bool:
        """Open again for `owner` if it still owns the gate (its handler raised under
        an ask: it lives on) and no stop has begun; False when it is not the owner."""
        with self._owning:
            if self._owner != owner:
                return False
            if not self._shut:
                self._open = True
            return True

    def close(self, owner: str | None = None) -> None:
        """No more decisions until an owner opens it again. With `owner`, only if it
        is still the owner (a stopping actor that was replaced leaves its successor's
        gate open); without, the owner is forgotten too (an owner given up on)."""
        with self._owning:
            if owner is None:
                self._owner = None
                self._open = False
            elif owner == self._owner:
                self._open = False

    def shut(self) -> None:
        """Closed until `arm()`: what a stop does first."""
        with self._owning:
            self._shut = True
            self._owner = None
            self._open = False

    def quiesce(self, timeout: float) -> bool:
        """Wait (up to `timeout` s) until no decision is under way: after `shut`, one
        that had the lock finishes and hands the journal its record before the journal
        stops. False if the lock stayed held (that decision then answers GATE_UNAVAILABLE)."""
        if not self._take(timeout):
            return False
        self._release()
        return True

    def arm(self) -> None:
        """An owner may open it again (what a start does first)."""
        with self._owning:
            self._shut = False

    @property
    def is_open(self) -> bool:
        return self._open

    def seed(self, state: GateState, recalled_at: tuple[float, datetime] | None = None) -> None:
        """What the gate starts from (the journal's recent approvals, recalled as of
        `recalled_at`: monotonic, wall), before it opens. Journaled: a replay recalls it again."""
        with self.lock:
            self._state = state
            self._reports_refused = 0  # what was refused is in the journal the state was recalled from
            if recalled_at is not None:
                self._journal.input(recalled_at[1], recalled_at[0], Seeded(*recalled_at), recalled_at[0])

    # -- state and reports -------------------------------------------------------
    def post(self, message: object, received: float | None = None) -> None:
        """State or a report, `received` (monotonic; default: now) when it was sent:
        applied before anything reads the gate's state next; at once if the lock is free."""
        pending = self._pending
        if len(pending) >= _MAX_PENDING:
            # Only a lock held that long gets here (every order waits meanwhile). Refused
            # state is not lost for good: the holder applies the latest of every kind
            # again before anything reads the state (`_apply_pending`). A refused report
            # (a fill, an outcome, a message sent) has no latest to apply: the gate no
            # longer knows its reservations and rates, and blocks until a start recalls them.
            kind = type(message)
            if kind is _Answered:
                return  # a count for the metrics only: nothing the gate decides on
            if kind in _STATE_KINDS:
                self._lost += 1
                if self._lost == 1:
                    log.error("gate_state_refused", pending=len(pending), message_type=type(message).__name__)
            else:
                self._reports_refused += 1
                if self._reports_refused == 1:
                    log.error("gate_report_refused", pending=len(pending), message_type=type(message).__name__,
                              effect="every order blocks GATE_UNAVAILABLE until riskgate restarts")  # fmt: skip
            return
        pending.append(Posted(message, self._clock.monotonic() if received is None else received))
        if self.lock.acquire(blocking=False):
            try:
                self._apply_pending()
            finally:
                self._release()

    def apply_now(self, message: object, received: float) -> None:
        """Apply `message` at once under the lock, skipping the post queue: for a replay, whose
        gate no other thread takes (supervisor.replay). Anything posted before goes first."""
        with self.lock:
            if self._pending or self._lost:
                self._apply_pending()
            self._apply(message, received)

    def decide_now(self, msg: Request) -> RiskGateResult:
        """`msg` decided at once under the lock, for a gate no other thread takes (a replay,
        supervisor.replay): no caller's deadline, no turn to wait for. Anything posted goes first."""
        with self.lock:
            if self._pending or self._lost:
                self._apply_pending()
            return self._answer(msg)

    def _take(self, wait: float) -> bool:
        """The lock within `wait` seconds (real time), waiting for it holding the GIL's
        turn, not in the lock: a thread that sleeps in the lock is handed it by the OS
        while it has no GIL, and then every caller blocks on every decision (a convoy:
        ~4x fewer decisions with 4 callers), while one that sleeps in it among callers
        that spin may never get it (a reader starved). Every taker spins alike."""
        lock = self.lock
        if lock.acquire(blocking=False):
            return True
        ends = _real_monotonic() + wait
        while not lock.acquire(blocking=False):
            if _real_monotonic() >= ends:
                return False
            time.sleep(0)  # lets the holder run (releases the GIL)
        return True

    def _wait_turn(self, wait: float) -> bool:
        """`_take` for a decider: one decider at a time spins for the lock, the others wait
        their turn asleep in the waiting room (a lock taken with a timeout). With every
        caller spinning, each spin hands the GIL to another spinner rather than to the
        holder, and 16 callers decided fewer orders than one (issue 28); asleep, they cost
        nothing. Readers (`_take_turn`) do not queue here: they spin beside the one decider."""
        ends = _real_monotonic() + wait
        room = self._waiting_room
        if not room.acquire(timeout=wait):
            return False
        try:
            return self._take(max(0.0, ends - _real_monotonic()))
        finally:
            room.release()

    def _take_turn(self, wait: float) -> bool:
        """`_take` for a reader (a tick, a view, the lease keeper's usage): a caller deciding
        flat out on its own thread would otherwise take the lock again at every release
        before the reader's thread next holds the GIL (seen: a lease keeper kept from the
        lock until its round failed, and its instance's orders then blocked as stale).
        While one waits, each decision first yields the GIL once (a flag read otherwise)."""
        with self._turns_lock:
            self._turns_wanted += 1
        try:
            return self._take(wait)
        finally:
            with self._turns_lock:
                self._turns_wanted -= 1

    def _release(self) -> None:
        """Release the lock, then apply what was posted while it was held (a halt's
        cancels, a level change's journal event do not wait for the next decision).
        A post that found the lock taken is seen here: it was appended before its
        own try for the lock failed, so before this release; one appended after
        this check finds the lock free and applies itself."""
        lock, pending = self.lock, self._pending
        lock.release()
        while (pending or self._lost) and lock.acquire(blocking=False):
            try:
                self._apply_pending()
            finally:
                lock.release()

    def applies(self, message: object) -> bool:
        """Whether `message` is state or a report the gate takes through `post`."""
        return type(message) in self._appliers

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: taken up between two decisions (journaled then)."""
        self.post(ConfigChanged(config))

    def _apply_pending(self) -> None:
        pending = self._pending
        while pending:
            self._apply(*pending.popleft())
        if self._lost:
            lost, self._lost = self._lost, 0
            latest = self._resync() if self._resync is not None else []
            for posted in latest:  # the newest of each kind: whatever was refused is superseded
                self._apply(*posted)
            self._journal.event(
                self._clock.now(), "gate_state_resynced", "gate", None, refused=lost, applied=len(latest)
            )
            log.warning("gate_state_resynced", refused=lost, applied=len(latest))

    def _apply(self, message: object, received: float) -> None:
        kind = type(message)
        applier = self._appliers.get(kind)
        if applier is None:
            log.warning("gate_unknown_message", message_type=kind.__name__)
            return
        if kind is not _Answered and self._journal.keeps_records:  # what the state is made of, in order (replay)
            self._journal.input(self._clock.now(), self._clock.monotonic(), message, received)
        try:
            applier(message, received)
        except Exception as exc:  # noqa: BLE001 - refused and journaled; the gate goes on
            name = kind.__name__
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("gate_message_refused", message_type=name, error=error)
            self._journal.event(self._clock.now(), "gate_message_refused", "gate", message_type=name, error=error)

    def tick(self, timeout: float = 1.0) -> bool:
        """Apply what is posted and journal what expired (the actor's timer); False if the lock was busy."""
        if not self._take_turn(timeout):
            return False
        try:
            self._apply_pending()
            self._journal_expired()
            held = len(self._state.reservations)
        finally:
            self._release()
        self._give_back_after_expiry(held)
        return True

    def _give_back_after_expiry(self, held: int) -> None:
        """Once `_GIVE_BACK_AFTER` reservations have ended since the most held, the memory
        they took is returned to the OS (supervisor.heap), outside the lock: the process's
        RSS then falls back instead of staying at its peak (issue 28, bench section 12)."""
        if held > self._held_peak:
            self._held_peak = held
        elif self._held_peak - held >= _GIVE_BACK_AFTER:
            self._held_peak = held
            if give_back():
                self.memory_given_back += 1

    # -- decisions ------------------------------------------------------------------
    def decide(self, msg: Request, wait: float | None) -> RiskGateResult | str | None:
        """The gate's answer, decided on this thread; None: the gate is closed
        (hand the order to its actor); BUSY: the lock was not free within
        `wait` seconds (None: do not wait at all, for an event loop)."""
        if not self._open:
            return None
        if self._turns_wanted:
            time.sleep(0)  # a reader (the keeper, the state API, a tick) waits: its turn first
        if not self.lock.acquire(blocking=False) and (wait is None or not self._wait_turn(wait)):
            return None if wait is None else BUSY
        try:
            if not self.is_open:
                return None  # closed while this waited
            if self._pending or self._lost:
                self._apply_pending()
            if msg.reply is not None and getattr(msg.reply, "gone", False):
                # Handed to the actor by a caller that has stopped waiting: nothing to book.
                return self._unavailable(msg, "the caller stopped waiting before the gate decided")
            self._late = False
            result = self._answer(msg)
            late = self._late  # found when its record was journaled (not counted then: this block is)
            if self._shut and result.decision != "block":
                # A stop began while it decided: its record may miss the journal's last
                # flush, so the order must not be sent. What it booked goes with the process.
                result = self._unavailable(msg, "riskgate stopped while this order was decided", timed=False)
            elif result.reason_code is not RC.GATE_UNAVAILABLE and (
                late or (msg.deadline is not None and self._clock.monotonic() > msg.deadline)
            ):
                # The caller's timeout passed while it decided: it hears what a late answer
                # would have said. What it booked stays booked until it ends or expires. (Past
                # its timeout only while it booked, after its record was counted: counted twice.)
                result = self._unavailable(msg, "decided after the caller's timeout", timed=late)
            if self._unreferenced and result.decision != "block" and self._counters is not None:
                self._counters.collar_unreferenced += 1  # (the decisions are counted from the journal's stream)
            return result
        finally:
            self._release()

    def decided_seq(self) -> int:
        """The journal seq of the last decision this thread made (0: its record was not
        queued, the queue being full); kept with journal.durability = "commit" only."""
        return int(getattr(self._seqs, "seq", 0))

    def unavailable(self, order_id: str, account: str | None, why: str) -> RiskGateResult:
        """A GATE_UNAVAILABLE decided without the lock (not started, busy past the
        caller's timeout, its actor gone): journaled now (the metrics count its record), counted in
        the gate's health by the next holder."""
        result = block_result(RC.GATE_UNAVAILABLE, why, order_id, self._clock.now())
        self._journal.decision(result, None, account)
        self.post(_Answered(result.reason_code, account), 0.0)
        return result

    def _on_answered(self, answered: _Answered, _received: float) -> None:
        self._decisions[answered.code] += 1  # (the metrics count its journal record)

    def _answer(self, msg: Request) -> RiskGateResult:
        try:
            if msg.deadline is not None and self._clock.monotonic() > msg.deadline:
                return self._unavailable(msg, "reached the gate after the caller's timeout")
            if self._reports_refused:
                return self._unavailable(msg, f"{self._reports_refused} reports (fills, outcomes, messages) were "
                                         "refused while the gate was held: its reservations and rates are unknown "
                                         "until riskgate restarts")  # fmt: skip
            return self._evaluate(msg)
        except Exception as exc:
            log.exception("gate_internal_error", error=repr(exc))
            return self._unavailable(msg, f"internal error: {type(exc).__name__}")

    def _unavailable(self, msg: Request, why: str, timed: bool = True) -> RiskGateResult:
        """A GATE_UNAVAILABLE answer, counted and journaled (it books nothing). `timed`: its
        record carries the time since the request, for the latency metric (not when it replaces
        a decision whose own record carries it already)."""
        self._decisions[RC.GATE_UNAVAILABLE] += 1
        result = block_result(RC.GATE_UNAVAILABLE, why, _order_id(msg), self._clock.now())
        order = msg.order if isinstance(msg, EvaluateOrder) else None
        sent = msg.sent
        latency = None if not timed or sent is None or self._counters is None else self._clock.monotonic() - sent
        self._journal.decision(result, order, _account(msg), latency=latency)
        return result

    def _evaluate(self, msg: Request) -> RiskGateResult:
        st = self._state
        config = self._config
        now = self._clock.monotonic()
        current = self._board.current
        if current is not None:
            st.ess, st.ess_received = current
            if current is not self._board_seen:  # a new reading: an input of the decisions from now on
                self._board_seen = current
                self._journal.input(self._clock.now(), now, current, current.received)
        st.journal_blocking = self._journal.blocking
        if st.reservations:
            self._expire(st, now)
        if isinstance(msg, EvaluateOrder) and msg.config is not None and msg.config is not config:
            # Validated against a config that a reload has since replaced: again, against this one.
            valid = validate_order(msg.order, config)
            if isinstance(valid, str):
                msg = RejectOrder(valid, msg.order.order_id or "", msg.order.account, msg.reply, msg.deadline, msg.sent)
            else:
                msg = EvaluateOrder(valid, msg.reply, msg.deadline, msg.sent, config)
        if isinstance(msg, RejectOrder):
            ev = invalid_order(msg.why, msg.order_id, msg.account, st, config, now, self._clock.now())
        else:
            ev = decide(msg.order, st, config, now, self._clock.now())
        result = ev.result
        self._unreferenced = ev.unreferenced  # for the metric (`decide`, on this thread, under the lock)
        code = result.reason_code
        self._decisions[code] += 1
        order = ev.order
        if order is not None and config.store.backend == "postgresql":
            self._count_reduction_short(st, order, now)  # before this order's own booking
        account = _account(msg)
        journal = self._journal
        if journal.keeps_records:  # a replay's gate keeps no record: nothing to look up for one
            book = st.books.get(account) if account is not None else None
            reserved = st.reserved_units_by_account.get(account, 0) if account is not None else None
            # The metrics count the record on the journal's thread; the time it took is its only part
            # here. A decision after its caller's timeout is not counted: `decide` answers (and
            # counts) GATE_UNAVAILABLE for it.
            sent, deadline, done = msg.sent, msg.deadline, self._clock.monotonic()
            late = self._late = code is not RC.GATE_UNAVAILABLE and deadline is not None and done > deadline
            latency = None if sent is None or self._counters is None or late else done - sent
            seq = journal.decision(result, order, account, st.signal, book, reserved, now, latency, not late)
        else:
            seq = journal.decision(result, order, account)
        if self._track_seq:
            self._seqs.seq = seq
        if code in STALE_SOURCE or self._failing_closed:
            self._note_fail_closed(code, account, result.reason)
        if order is not None and result.decision != "block":
            # Approved orders only: a blocked one sent nothing (its id may come again), and
            # approvals are rate-limited per account, so the memory of them stays bounded.
            st.record_decided(order, now, config.gate.duplicate_window_s)
            booked = Reservation(  # (positional: this runs per approval)
                order.order_id or "",  # order_id
                order.account,  # account
                order.exchange,  # exchange
                (order.symbol, order.exchange),  # key
                ev.reserve_notional,  # notional
                ev.opens_new,  # opens_new
                now + config.gate.reservation_ttl_s,  # expires
                -1,  # units: from the notional
                exposure_price(order, st, now),  # price: what its notional was valued at
                ev.reducing_qty,  # reducing_qty
                result.adjusted_quantity,  # quantity
            )
            st.reserve(booked)
            st.record_approval(order.account, now)
            if st.reduce_wanted and booked.reducing_qty > 0:  # what it wanted to close is in flight now
                st.reduce_wanted.pop(reduce_key(order.account, order.symbol, order.exchange), None)
            if config.store.backend == "postgresql" and len(st.decided_outbox) < _MAX_OUTBOX:
                # The keeper's demand and the id the other instances learn (beyond the bound the
                # keeper is gone: the id stays known here, the demand is the slice).
                st.decided_outbox.append((order.account, booked.order_id, order.exchange, booked.units))
        elif code is RC.DUPLICATE_ORDER and order is not None and st.repeats:
            st.latch_repeats(order, now, config.gate.duplicate_window_s, config.gate.max_repeats)
        elif code is RC.BUDGET_UNAVAILABLE and order is not None:
            self._count_budget(st.budget_refused, order, order.quantity * exposure_price(order, st, now))
            if self.on_budget_short is not None:
                self.on_budget_short()
        return result

    def _count_reduction_short(self, st: GateState, order: OrderRequest, now: float) -> None:
        """Several instances: an order that would close part of a position beyond this
        instance's reduction lease is the keeper's demand for more of it (and wakes it)."""
        book = st.books.get(order.account)
        pkey = (order.symbol, order.exchange)
        position = book.positions.get(pkey, 0.0) if book is not None else 0.0
        if position == 0.0 or (position > 0) == (order.side == "buy"):
            return
        in_flight = st.reducing_in_flight(order.account, pkey)
        wanted = min(order.quantity, abs(position) - in_flight)
        key = reduce_key(order.account, *pkey)
        short = wanted - reduction_room(st.leases.get(key), position, in_flight, now)
        if short > 1e-9:
            st.reduce_names[key] = (order.account, pkey)
            # Asked for until the order comes back (a retry), for as long as a lease lives.
            st.reduce_wanted[key] = (qty_units(wanted), now + self._config.store.lease_ttl_s)
            if self.on_budget_short is not None:
                self.on_budget_short()

    @staticmethod
    def _count_budget(counts: dict[tuple[str, str], int], order: OrderRequest, usd: float) -> None:
        """What the lease keeper reads as demand: units approved, or refused for want of budget."""
        units = round(usd * UNITS_PER_USD) if 0.0 < usd < 1e15 else 0
        for key in (("exchange", order.exchange), ("account", order.account)):
            counts[key] = counts.get(key, 0) + units

    def _expire(self, st: GateState, now: float) -> None:
        expired = self._expired
        for r in st.expire_reservations(now):
            if not expired:
                self._expired_since = now
            expired.append({"account": r.account, "order_id": r.order_id, "notional": r.notional})
        if expired and (len(expired) >= _EXPIRED_BATCH or now - self._expired_since >= _EXPIRED_EVERY_S):
            self._journal_expired()

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

    # -- applying state (holding the lock) ----------------------------------------------
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

    def _on_prices(self, snap: PriceSnapshot, received: float) -> None:
        st = self._state
        refused_before = st.prices.refused  # why the last snapshot was refused: said once per cause
        why, spikes = st.prices.apply(snap, received, self._clock.now(), self._config.prices)
        st.revalue_all(self._clock.monotonic())  # a price taken, or only dropped: valued at the mark again
        if not why and st.unpriced:
            st.reprice_recalled(st.prices, self._clock.monotonic())
        if why and why != refused_before:
            log.warning("prices_refused", why=why)
        if not why:
            self._journal_marks(st, snap, received)
        for spike in spikes:
            until = self._clock.now() + timedelta(seconds=spike.until - self._clock.monotonic())
            self._journal.event(
                self._clock.now(), "price_spike_pause", "prices", None, symbol=spike.symbol, before=spike.before,
                after=spike.after, move_pct=round(spike.move_pct, 2), until=until, reason=spike.why,
            )  # fmt: skip
            log.warning("price_spike_pause", symbol=spike.symbol, move_pct=round(spike.move_pct, 2), reason=spike.why)
            if self._counters is not None:
                self._counters.price_pauses[spike.symbol] = self._counters.price_pauses.get(spike.symbol, 0) + 1

    def _journal_marks(self, st: GateState, snap: PriceSnapshot, received: float) -> None:
        """Each symbol's mark into the journal when it moved by half of spike_pct since the last
        one journaled, or a minute passed: a restart measures its first price from it (a move
        across a restart pauses as one across an outage does)."""
        pct = self._config.prices.spike_pct or 10.0
        marks = self._marks_journaled
        for symbol, price in snap.prices.items():
            held = st.prices.symbols.get(symbol)
            if held is None or held.price != price:
                continue  # not taken (stamped ahead, lagging)
            last = marks.get(symbol)
            if last is not None and received - last[1] < 60.0 and abs(price / last[0] - 1.0) * 100.0 < pct / 2:
                continue
            marks[symbol] = (price, received)
            self._journal.event(self._clock.now(), "price_mark", "prices", None, symbol=symbol, price=price)

    def _on_account(self, state: AccountState, received: float) -> None:
        self._state.put_account(state, received, self._config.symbols)

    def _on_ess(self, ess: EssState, _received: float) -> None:
        # Publishers put the newest ESS state on the board before posting it here
        # (every decision reads the board); this only journals and logs changes.
        if ess.active is True and self._ess_logged is not True and self._halts is not None:
            self._halts.began(ess.reason)  # one queue put: the cancels run on the watch's thread
        if ess.active != self._ess_logged:
            self._journal.event(
                self._clock.now(), "ess_changed", "ess", active=ess.active, previous=self._ess_logged, reason=ess.reason
            )
            log.info("gate_ess_state", active=ess.active, previous=self._ess_logged, reason=ess.reason)
            self._ess_logged = ess.active

    def _on_message_sent(self, msg: MessageSent, _received: float) -> None:
        self._state.record_message(msg.account, self._clock.monotonic())

    def _on_fill(self, fill: Fill, _received: float) -> None:
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

    def _on_outcome(self, outcome: OrderOutcome, _received: float) -> None:
        account = outcome.account
        st = self._state
        if account is None:
            # Ids are per account: without one, only an id a single account holds is released.
            holders = st.accounts_holding(outcome.order_id)
            if len(holders) != 1:
                if holders:
                    log.warning("outcome_ambiguous", order_id=outcome.order_id, accounts=len(holders))
                return
            account = holders[0]
        r = st.reservations.get((account, outcome.order_id))
        if outcome.status in ("open", "partially_filled"):
            if r is not None and not r.resting:
                st.mark_resting(account, outcome.order_id)  # it lives on at the exchange: no expiry
                # Journaled: a restarted process recalls the order as resting (supervisor.journal.recall).
                self._journal.event(self._clock.now(), "order_resting", "gate", account, order_id=outcome.order_id)
            return
        if r is None:
            return
        filled = outcome.filled_quantity
        if outcome.status == "filled" and filled <= 0:
            filled = r.quantity  # "filled" without a quantity: all of it
        if r.resting:
            self._journal.event(self._clock.now(), "order_ended", "gate", account, order_id=outcome.order_id)
        # No log line: this runs under the gate's lock for every order's end (the journal has the outcome).
        st.ended(account, outcome.order_id, filled, self._clock.monotonic(), self._config.gate.reservation_ttl_s)

    def _on_override(self, override: Override, received: float) -> None:
        # The TTL runs from when it was sent. (Approval, expiry and revocation are
        # journaled by OperatorControls.)
        if override.ttl_s > 0:
            self._state.overrides[override.account] = (override.override_id, received + override.ttl_s)
        else:
            self._state.overrides.pop(override.account, None)

    def _on_config(self, msg: ConfigChanged, _received: float) -> None:
        old = self._config
        if msg.config is old:
            return
        self._config = msg.config
        st = self._state
        if st.prices.symbols:
            st.prices.reconfigure(msg.config.prices)  # a changed max_age_s ages the prices held anew
            st.revalue_all(self._clock.monotonic())
        if msg.config.store.shared and self._state.leases:
            # A cap may have changed: no lease is spent until the next round grants one against it.
            self._state.leases = {}
            if self.on_budget_short is not None:
                self.on_budget_short()
        self._journal.event(
            self._clock.now(), "config_reloaded", "riskgate", previous=old.digest or None, sha256=msg.config.digest
        )

    def _on_decided_elsewhere(self, msg: DecidedElsewhere, received: float) -> None:
        window = self._config.gate.duplicate_window_s
        if window > 0:
            st = self._state
            for key in msg.orders:
                st.record_decided_elsewhere(key, received, window)

    def _on_reduce_only_mode(self, msg: ReduceOnlyMode, _received: float) -> None:
        self._state.reduce_only_mode = msg.reason

    def _on_leases_meanwhile(self, msg: LeasesMeanwhile, _received: float) -> None:
        self._state.leases.update(msg.leases)

    def _on_shared(self, msg: SharedState, _received: float) -> None:
        st = self._state
        if msg.confirmed_at >= st.shared_confirmed:  # a round that ended late never turns time back
            st.shared_confirmed = msg.confirmed_at
            # Leases asked under a config a reload has since replaced are not spent (a cap may
            # have been lowered): the next round asks again under this one.
            st.leases = dict(msg.leases) if msg.config is None or msg.config is self._config else {}

    def budget_round(
        self,
        timeout: float,
        planner: Callable[[dict[tuple[str, str], BudgetUsage], list[tuple[str, str, str, int]]], Any],
    ) -> Any:
        """The lease keeper's start of a round, under the lock: `planner(usage, the approvals since
        the last round: (account, order id, exchange, units))` returns
        (what to ask for, the leases to hold meanwhile); those are held at once, before any
        other order is decided (an order between a read and a later shrink could spend a lease
        the database is about to give to another instance). None if the lock was busy."""
        if not self._take_turn(timeout):
            return None
        try:
            self._apply_pending()
            st = self._state
            outbox, st.decided_outbox = st.decided_outbox, []
            asks, meanwhile = planner(self._usage(), outbox)
            if meanwhile:
                self._apply(LeasesMeanwhile(meanwhile), self._clock.monotonic())  # journaled, like every input
            return asks
        finally:
            self._release()

    # -- reading (ops surfaces: a copy under the lock, never held long) ---------------------
    def budget_usage(self, timeout: float = 1.0) -> dict[tuple[str, str], BudgetUsage] | None:
        """Per cap the config sets: positions, in flight, approved and refused so far (the
        lease keeper's demand) and the lease held; None if the lock was not free in time."""
        if not self._take_turn(timeout):
            return None
        try:
            self._apply_pending()
            return self._usage()
        finally:
            self._release()

    def _usage(self) -> dict[tuple[str, str], BudgetUsage]:
        st = self._state
        now = self._clock.monotonic()
        if st.reservations:
            self._expire(st, now)
        out: dict[tuple[str, str], BudgetUsage] = {}
        for key in cap_keys(self._config):
            kind, name = key
            if kind == "exchange":
                positions = st.exchange_units_at_mark(name, now)
                reserved = st.reserved_units_by_exchange.get(name, 0)
            else:
                book = st.books.get(name)
                positions = st.book_units_at_mark(book, now) if book is not None else 0
                reserved = st.reserved_units_by_account.get(name, 0)
            out[key] = BudgetUsage(positions, reserved, st.budget_refused.get(key, 0), st.leases.get(key))
        # The positions' reduction budgets: those closed in flight, leased, or wanted.
        names = st.reduce_names
        keys = {key for key in (*st.leases, *st.reduce_wanted) if key[0] == REDUCE}
        for account, pkey in st.reducing_by_key:
            key = reduce_key(account, *pkey)
            names.setdefault(key, (account, pkey))
            keys.add(key)
        for key in keys:
            found = names.get(key)
            if found is None:
                continue  # never asked through this process (a lease of a previous config): lapses
            account, pkey = found
            book = st.books.get(account)
            position = book.positions.get(pkey, 0.0) if book is not None else 0.0
            lease = st.leases.get(key)
            want = st.reduce_wanted.get(key)
            if want is not None and not now < want[1]:
                del st.reduce_wanted[key]  # not asked again within a lease's life: given up
                want = None
            if position == 0.0 and (lease is None or lease.units == 0):
                st.reduce_wanted.pop(key, None)  # nothing left to close: no demand, nothing to give back
                names.pop(key, None)
                continue
            in_flight = qty_units(st.reducing_in_flight(account, pkey))
            wanted = want[0] if want is not None else 0
            out[key] = BudgetUsage(0, in_flight, 0, lease, abs(position), wanted)
        return out

    def view(self, timeout: float = 1.0) -> GateView | None:
        """What the gate holds now; None if the lock was not free within `timeout`."""
        if not self._take_turn(timeout):
            return None
        try:
            self._apply_pending()
            self._journal_expired()  # the state API, metrics and alerts ask: expiries are journaled then too
            st = self._state
            now = self._clock.monotonic()
            accounts = {
                name: AccountView(
                    state=book.state,
                    received=book.received,
                    gross_notional=st.book_units_at_mark(book, now) / UNITS_PER_USD,
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
                reduce_only_mode=st.reduce_only_mode,
                repeat_latches=st.latched(self._clock.monotonic()) if st.repeat_latches else {},
                prices={
                    symbol: (p.price, p.fresh_until, p.paused_until, p.pause_why, p.stamped)
                    for symbol, p in st.prices.symbols.items()
                },
                prices_accepted=st.prices.accepted_at,
                prices_refused=st.prices.refused,
            )
        finally:
            self._release()

    def stats(self, reset: bool, timeout: float = 1.0) -> dict[str, Any] | None:
        """Decision counts since the last reset, and what the gate holds; None if the lock was busy."""
        if not self._take_turn(timeout):
            return None
        try:
            self._apply_pending()
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
            if reset:
                self._decisions.clear()
            return stats
        finally:
            self._release()


def _order_id(msg: Request) -> str:
    return msg.order_id if isinstance(msg, RejectOrder) else msg.order.order_id or ""


def _account(msg: Request) -> str | None:
    return msg.account if isinstance(msg, RejectOrder) else msg.order.account
