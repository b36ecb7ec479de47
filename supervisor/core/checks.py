"""The pre-trade checks (docs/checks.md), as pure functions.

Each check reads the order and an `EvalContext` (gate state, limits, the time)
and returns a `Denial`, a `Scale` or None. No I/O, no logging, no mutation:
`evaluate_order` runs them in order, first denial wins, scale-downs combine by
the smallest factor. The gate actor applies the consequences (reservations,
rate window) and logs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from supervisor.config import AccountConfig, Config, GateConfig, ProfileConfig, SymbolConfig
from supervisor.core.budget import reduce_key, reduction_room, room_units
from supervisor.core.gate_state import UNITS_PER_USD, AccountBook, GateState
from supervisor.core.messages import AccountState, EssState, OrderRequest, RiskSignal
from supervisor.core.reasons import ReasonCode as RC
from supervisor.core.values import shorten

__all__ = ["CHECKS", "Denial", "EvalContext", "Scale", "exposure_price", "floor_to_lot"]


@dataclass(frozen=True, slots=True)
class Denial:
    code: RC
    reason: str


@dataclass(frozen=True, slots=True)
class Scale:
    """The order fits only up to `max_quantity` (base units, before lot rounding)."""

    code: RC
    max_quantity: float
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """A check passed in an exceptional way worth carrying into the result."""

    code: RC
    reason: str


Outcome = Denial | Scale | Note | None


class EvalContext:
    """Everything a check may read, gathered once per evaluation."""

    __slots__ = (
        "account",
        "book",
        "config",
        "has_book",
        "known",
        "now",
        "position",
        "profile",
        "reduces",
        "reducible",
        "reduction_room",
        "signed_qty",
        "state",
        "symbol",
        "unreferenced",
        "value_price",
        "wall",
    )

    def __init__(self, order: OrderRequest, state: GateState, config: Config, now: float, wall: datetime) -> None:
        self.config = config
        self.state = state
        self.now = now
        self.wall = wall
        # account, profile and book may be missing; checks 6 and 7 block the
        # order when they are (`known`, `has_book`), so every later check reads
        # them as present, without an Optional test per attribute read.
        account = config.accounts.accounts.get(order.account)
        profile = config.profiles.get(account.capital_profile) if account is not None else None
        book = state.books.get(order.account)
        self.known = account is not None and profile is not None
        self.has_book = book is not None
        # Placeholders where they are missing (never read: checks 6 and 8 block first), so that
        # every attribute keeps its type (and a compiled core its checks).
        self.account: AccountConfig = account if account is not None else _NO_ACCOUNT
        self.profile: ProfileConfig = profile if profile is not None else _NO_PROFILE
        self.symbol: SymbolConfig = config.symbols[order.symbol]
        self.book: AccountBook = book if book is not None else _NO_BOOK
        self.signed_qty = order.quantity if order.side == "buy" else -order.quantity
        self.position = 0.0
        if book is not None:
            self.position = self.book.positions.get((order.symbol, order.exchange), 0.0)
        pos = self.position
        # An order reduces only what orders already in flight do not close:
        # otherwise five "reducing" sells of a 10-lot long would all pass as
        # reductions and leave the account short 40.
        self.reducible = 0.0
        self.reduction_room = math.inf  # several instances: what the position's reduction lease covers
        if pos != 0.0 and (pos > 0) != (self.signed_qty > 0):
            in_flight = state.reducing_in_flight(order.account, (order.symbol, order.exchange))
            self.reducible = max(0.0, abs(pos) - in_flight)
            if config.store.backend == "postgresql" and self.reducible > 0.0:
                # Several instances: what this instance may close of the position (its lease).
                lease = state.leases.get(reduce_key(order.account, order.symbol, order.exchange))
                self.reduction_room = reduction_room(lease, pos, in_flight, now)
        self.reduces = self.reducible > 0.0 and order.quantity <= self.reducible
        # What the order's notional is valued at: its price, or the prices source's fresh mark
        # when that is higher (a market order's price is the caller's guess; the mark is not).
        self.value_price = exposure_price(order, state, now)
        self.unreferenced = False  # the collar passed it with no reference price at all (set by it)

    def reducible_qty(self) -> float:
        """How much of an opposite position an order of this side may still close."""
        return self.reducible

    def incremental_notional(self, quantity: float, price: float) -> float:
        """Gross notional this order adds: 0 for a pure reduction."""
        return max(0.0, quantity - self.reducible_qty()) * price

    def opens_new(self) -> bool:
        return self.position == 0.0


_RISK_LEVELS = frozenset(("INFO", "WARNING", "CRITICAL"))
_NO_ACCOUNT = AccountConfig(name="", exchange="", capital_profile="")
_NO_PROFILE = ProfileConfig(
    name="",
    max_daily_loss_pct=-math.inf,
    max_weekly_loss_pct=-math.inf,
    max_single_trade_risk_pct=0.0,
    max_open_positions=0,
    allowed_leverage=0.0,
)
_NO_BOOK = AccountBook.from_state(AccountState("", 0.0, (), 0.0, 0.0), 0.0)


def exposure_price(order: OrderRequest, state: GateState, now: float) -> float:
    """The price an order's notional is valued at: the higher of its own and the prices
    source's fresh mark for the symbol (exposure never below the market's value)."""
    ref = state.prices.symbols.get(order.symbol)
    if ref is not None and now <= ref.fresh_until and ref.price > order.price:
        return ref.price
    return order.price


def _age(now: float, received: float) -> float:
    return max(0.0, now - received)


# -- 0: the record -------------------------------------------------------------


def journal_denial(blocking: str | None) -> Denial | None:
    if blocking is not None:
        return Denial(RC.JOURNAL_UNAVAILABLE, f"{blocking} (journal.on_failure = block)")
    return None


def check_journal(o: OrderRequest, c: EvalContext) -> Outcome:
    return journal_denial(c.state.journal_blocking)


# -- 1..5: upstream state -------------------------------------------------
# Each reads only the upstream state, never the order: the `*_denial` functions
# are what every order checks (before any override), and `market_blockers`
# lists them all for people (the dashboard's banner, readiness).


def ess_stale_denial(ess: EssState | None, received: float, now: float, config: Config) -> Denial | None:
    if ess is None:
        return Denial(RC.ESS_STATE_STALE, "no ESS state received yet")
    age = _age(now, received)
    if age > config.ess.max_age_s:
        return Denial(RC.ESS_STATE_STALE, f"ESS state age={age:.3f}s > max_age_s={config.ess.max_age_s}")
    if ess.active is not True and ess.active is not False:
        return Denial(RC.ESS_STATE_STALE, f"ESS source unreadable: {ess.reason or ess.active!r}")
    return None


def check_ess_fresh(o: OrderRequest, c: EvalContext) -> Outcome:
    return ess_stale_denial(c.state.ess, c.state.ess_received, c.now, c.config)


def _override(o: OrderRequest, c: EvalContext) -> str | None:
    """The id of the approved override this reduce-only order runs under, if any.
    (Whether it really reduces a known position is checked later: 6 and 7.)"""
    if not o.reduce_only:
        return None
    found = c.state.overrides.get(o.account)
    return found[0] if found is not None and found[1] > c.now else None


def _overridden(o: OrderRequest, c: EvalContext, what: str) -> Note | None:
    override_id = _override(o, c)
    if override_id is None:
        return None
    return Note(RC.OVERRIDE_APPLIED, f"override {override_id}: reduce-only order through {what}")


def ess_halt_denial(ess: EssState | None) -> Denial | None:
    if ess is not None and ess.active:
        return Denial(RC.ESS_HALT_ACTIVE, f"ESS halt active: {ess.reason}")
    return None


def check_ess_halt(o: OrderRequest, c: EvalContext) -> Outcome:
    ess = c.state.ess
    denial = ess_halt_denial(ess)
    if denial is not None and ess is not None:
        if any(s.active is not True and s.active is not False for s in ess.sources):
            return denial  # a source is unreadable too: an override never passes what is not known
        return _overridden(o, c, f"a halt ({ess.reason})") or denial
    return None


def check_risk_fresh(o: OrderRequest, c: EvalContext) -> Outcome:
    denial = risk_stale_denial(c.state.signal, c.state.signal_received, c.now, c.wall, c.config)
    if denial is not None:
        return _overridden(o, c, f"stale Risk v3 state ({denial.reason})") or denial
    return None


def risk_stale_denial(
    sig: RiskSignal | None, received: float, now: float, wall: datetime, config: Config
) -> Denial | None:
    if sig is None:
        return Denial(RC.RISK_STATE_STALE, "no Risk v3 signal received yet")
    if sig.risk_level not in _RISK_LEVELS or not isinstance(sig.timestamp, datetime):
        return Denial(RC.RISK_STATE_STALE, f"Risk v3 signal unusable: risk_level={sig.risk_level!r}")
    age = _age(now, received)
    if age > config.risk_v3.max_age_s:
        return Denial(RC.RISK_STATE_STALE, f"Risk v3 fetch age={age:.3f}s > max_age_s={config.risk_v3.max_age_s}")
    signal_age = (wall - sig.timestamp).total_seconds()
    if signal_age < -config.risk_v3.max_clock_skew_s:
        return Denial(
            RC.RISK_STATE_STALE,
            f"Risk v3 signal stamped {-signal_age:.0f}s in the future"
            f" > max_clock_skew_s={config.risk_v3.max_clock_skew_s}",
        )
    if signal_age > config.risk_v3.max_signal_age_s:
        return Denial(
            RC.RISK_STATE_STALE,
            f"Risk v3 signal evaluated {signal_age:.0f}s ago > max_signal_age_s={config.risk_v3.max_signal_age_s}",
        )
    return None


def _reduce_only_passes(o: OrderRequest, c: EvalContext) -> bool:
    return o.reduce_only and c.config.gate.reduce_only_when_critical


def critical_denial(sig: RiskSignal | None) -> Denial | None:
    if sig is not None and sig.risk_level == "CRITICAL":
        issues = "; ".join(sig.critical_issues[:3]) or "no detail"
        return Denial(RC.GLOBAL_RISK_CRITICAL, f"global risk CRITICAL: {issues}")
    return None


def check_risk_critical(o: OrderRequest, c: EvalContext) -> Outcome:
    sig = c.state.signal
    if sig is not None and sig.risk_level == "CRITICAL" and not _reduce_only_passes(o, c):
        return _overridden(o, c, "CRITICAL") or critical_denial(sig)
    return None


def ess_action_denial(sig: RiskSignal | None) -> Denial | None:
    if sig is not None and sig.ess_action_required:
        return Denial(
            RC.RISK_V3_ESS_ACTION_REQUIRED, f"Risk v3 requires ESS action: tier={sig.ess_tier_recommendation}"
        )
    return None


def check_ess_action(o: OrderRequest, c: EvalContext) -> Outcome:
    sig = c.state.signal
    if sig is not None and sig.ess_action_required and not _reduce_only_passes(o, c):
        return _overridden(o, c, "an ESS action required by Risk v3") or ess_action_denial(sig)
    return None


def market_blockers(
    *,
    journal_blocking: str | None,
    ess: EssState | None,
    ess_received: float,
    signal: RiskSignal | None,
    signal_received: float,
    config: Config,
    now: float,
    wall: datetime,
) -> list[Denial]:
    """Everything in checks 0-5 that blocks every order that opens or grows a
    position now, whatever its account, in the order the gate checks them."""
    found = (
        journal_denial(journal_blocking),
        ess_stale_denial(ess, ess_received, now, config),
        ess_halt_denial(ess),
        risk_stale_denial(signal, signal_received, now, wall, config),
        critical_denial(signal),
        ess_action_denial(signal),
    )
    return [d for d in found if d is not None]


# -- 6..8: account --------------------------------------------------------


def check_account_known(o: OrderRequest, c: EvalContext) -> Outcome:
    if not c.known:
        return Denial(RC.UNKNOWN_ACCOUNT, f"account {o.account!r} is not configured")
    if o.exchange != c.account.exchange:
        return Denial(
            RC.INVALID_ORDER, f"account {o.account!r} trades on {c.account.exchange!r}, order names {o.exchange!r}"
        )
    return None


def check_duplicate_order(o: OrderRequest, c: EvalContext) -> Outcome:
    # One id, one reservation: a replayed or double-submitted order whose first
    # approval is still in flight must not take a second slot against the caps.
    st, oid = c.state, o.order_id or ""
    if st.holds(o.account, oid):
        return Denial(RC.DUPLICATE_ORDER, f"order_id {shorten(o.order_id, 40)} of this account is still in flight")
    window = c.config.gate.duplicate_window_s
    if window <= 0:
        return None
    if st.decided_within(o.account, oid, c.now, window):
        return Denial(
            RC.DUPLICATE_ORDER, f"order_id {shorten(o.order_id, 40)} was decided in the last {window:g}s (a replay)"
        )
    limit = c.config.gate.max_repeats
    if st.repeats and st.repeats_within(o, c.now, window) >= limit:
        return Denial(
            RC.DUPLICATE_ORDER,
            f"the same {o.side} of {o.quantity:g} {o.symbol} at {o.price:g} already came {limit} times in {window:g}s",
        )
    return None


def account_denial(
    name: str, state: AccountState | None, received: float, usable: bool, now: float, config: Config
) -> Denial | None:
    """Whether an account's own state lets it trade (check 8): present, fresh, readable."""
    if state is None:
        return Denial(RC.ACCOUNT_STATE_STALE, f"no state for account {name!r} yet")
    age = _age(now, received)
    if age > config.accounts.max_age_s:
        return Denial(RC.ACCOUNT_STATE_STALE, f"account state age={age:.3f}s > max_age_s={config.accounts.max_age_s}")
    if state.problem is not None:
        return Denial(RC.ACCOUNT_STATE_STALE, f"account state unusable: {state.problem}")
    if not usable:
        return Denial(
            RC.ACCOUNT_STATE_STALE, f"account state unusable (non-finite equity, baseline or position): {name!r}"
        )
    return None


def check_account_fresh(o: OrderRequest, c: EvalContext) -> Outcome:
    if not c.has_book:
        return account_denial(o.account, None, 0.0, False, c.now, c.config)
    return account_denial(o.account, c.book.state, c.book.received, c.book.usable, c.now, c.config)


def check_shared_state(o: OrderRequest, c: EvalContext) -> Outcome:
    """Several instances: an opening order needs the shared halt state confirmed within
    store.max_age_s (unknown is not "not halted"); a reducing one passes."""
    store = c.config.store
    if store.backend != "postgresql" or c.reduces:
        return None
    age = c.now - c.state.shared_confirmed
    if age <= store.max_age_s:
        return None
    shown = f"{age:.1f} s ago" if age != math.inf else "never"
    return Denial(RC.SHARED_STATE_STALE, f"shared state confirmed {shown} > store.max_age_s={store.max_age_s}")


def check_reduction_budget(o: OrderRequest, c: EvalContext) -> Outcome:
    """Several instances: closing part of a position spends this instance's lease of it (a
    position's reduction budget), so that instances closing one position at once never close
    more than it holds. Beyond the lease: scaled to it, or blocked without one (BUDGET_UNAVAILABLE;
    the keeper asks for more at its next round)."""
    if c.reducible == 0.0:
        return None  # closes nothing (the common case)
    closing = min(o.quantity, c.reducible)
    if closing <= c.reduction_room + 1e-9:
        return None
    room = c.reduction_room
    what = (
        f"closing {closing:.8g} of the {o.symbol} position needs its reduction budget: this instance holds {room:.8g}"
    )
    if room <= 0.0:
        return Denial(RC.BUDGET_UNAVAILABLE, f"{what} (asked for more: retry after the next round)")
    return Scale(RC.BUDGET_UNAVAILABLE, room, f"{what} (asked for more)")


def check_reduce_only_mode(o: OrderRequest, c: EvalContext) -> Outcome:
    """An operator's reduce-only halt: an order that opens or grows a position blocks."""
    why = c.state.reduce_only_mode
    if why is not None and not c.reduces:
        return Denial(RC.REDUCE_ONLY_MODE, f"reduce-only mode ({why}): only orders that reduce a position pass")
    return None


def check_reduce_only(o: OrderRequest, c: EvalContext) -> Outcome:
    if o.reduce_only and not c.reduces:
        return Denial(
            RC.INVALID_ORDER,
            f"reduce_only {o.side} {o.quantity} would open or grow the position (position={c.position})",
        )
    return None


def check_order_size(o: OrderRequest, c: EvalContext) -> Outcome:
    """A fat finger is an error to stop, not an order to shrink: before any scaling."""
    max_qty = c.symbol.max_qty
    if max_qty is not None and o.quantity > max_qty:
        return Denial(RC.MAX_ORDER_QUANTITY, f"quantity {o.quantity:g} > the symbol's max_qty {max_qty:g}")
    cap = c.profile.max_order_notional_usd
    if cap is not None and o.quantity * c.value_price > cap:
        notional = o.quantity * c.value_price
        return Denial(
            RC.MAX_ORDER_NOTIONAL,
            f"notional {notional:,.2f} > profile {c.profile.name!r} max_order_notional_usd {cap:,.2f}",
        )
    return None


def _trusted_band(
    o: OrderRequest, book: AccountBook | None, state: GateState, now: float, config: Config
) -> tuple[float, float] | None:
    """Prices riskgate saw itself, as (lowest, highest): the prices source's fresh mark for
    the symbol (with its mark of prices.spike_window_s ago), else every account's snapshot
    mark for the symbol on that exchange within `accounts.max_age_s`, else the last fill's
    price (kept only near such marks), else this account's own mark."""
    ref = state.prices.symbols.get(o.symbol)
    if ref is not None and now <= ref.fresh_until:
        return ref.low, ref.high
    key = (o.symbol, o.exchange)
    band = state.mark_band(key, now, config.accounts.max_age_s)
    if band is not None:
        return band
    mark = book.marks.get(key) if book is not None else None
    return (mark, mark) if mark is not None else None


def collar_pct(symbol: SymbolConfig, config: Config) -> float:
    return symbol.collar_pct if symbol.collar_pct is not None else config.gate.collar_pct


def check_price_pause(o: OrderRequest, c: EvalContext) -> Outcome:
    """A symbol whose mark moved beyond prices.spike_pct within the window is paused for
    prices.spike_pause_s: an order that opens or grows a position on it blocks."""
    ref = c.state.prices.symbols.get(o.symbol)
    if ref is not None and c.now < ref.paused_until and not c.reduces:
        return Denial(RC.PRICE_SPIKE_PAUSE, f"{ref.pause_why} ({ref.paused_until - c.now:.0f}s left)")
    return None


def check_price_collar(o: OrderRequest, c: EvalContext) -> Outcome:
    """A buy priced far above the reference, or a sell far below it, is a fat
    finger. The reference: the prices riskgate saw (the prices source's fresh mark
    and its mark of spike_window_s ago; else every account's fresh mark for the
    symbol, a fill's near them, the account's own mark), else the order's
    reference_price (never with a prices source configured and the policy
    "block"); a reference_price far from a price riskgate saw is refused.
    Marks that disagree hold an order to the stricter side: a buy within the
    collar above the lowest, a sell within it below the highest. A symbol the
    prices source covers (prices.symbols, every configured one when that is
    empty, or one it priced once) without a fresh price blocks opening orders
    (PRICE_REFERENCE_STALE); a reduction falls back."""
    sym, gate = c.symbol, c.config.gate
    ref = c.state.prices.symbols.get(o.symbol)
    if (ref is None or c.now > ref.fresh_until) and not c.reduces:
        if ref is not None:
            age = c.wall - ref.stamped
            return Denial(
                RC.PRICE_REFERENCE_STALE,
                f"no fresh price for {o.symbol}: the last, {ref.price:g}, is {age.total_seconds():.1f}s old"
                f" (prices.max_age_s={c.config.prices.max_age_s:g}) or was dropped",
            )
        if c.config.prices.enabled and o.symbol in c.config.priced_symbols:
            return Denial(RC.PRICE_REFERENCE_STALE, f"no price for {o.symbol} from the prices source yet")
    pct = collar_pct(sym, c.config)
    band = _trusted_band(o, c.book, c.state, c.now, c.config)
    claimed = o.reference_price
    up, down = 1.0 + pct / 100.0, 1.0 - pct / 100.0
    if band is not None and claimed is not None and not band[1] * down <= claimed <= band[0] * up:
        # The caller's reference sizes a market order (its notional, its risk): a claim far
        # from the market in either direction would shrink every cap, so it is refused.
        seen = f"{band[0]:g}" if band[0] == band[1] else f"{band[0]:g}-{band[1]:g}"
        why = f"reference_price {claimed:g} more than {pct:g}% from the market's {seen}"
        return Denial(RC.PRICE_OUT_OF_COLLAR, why)
    if band is None:
        policy = sym.collar_missing_reference or gate.collar_missing_reference
        if policy == "block" and (claimed is None or c.config.prices.enabled):
            # With a prices source of its own the gate never lets the caller's word alone pass.
            return Denial(
                RC.PRICE_OUT_OF_COLLAR, f"no reference price for {o.symbol} (collar_missing_reference = block)"
            )
        if claimed is None:
            c.unreferenced = True  # the order's own scratch, for the metric: no state changes
            return None
        band = (claimed, claimed)  # "allow": held to the caller's own claim at least
    if o.side == "buy":
        limit = band[0] * up
        if o.price > limit:
            return Denial(RC.PRICE_OUT_OF_COLLAR, f"buy at {o.price:g} > {limit:g} ({pct:g}% above {band[0]:g})")
    else:
        limit = band[1] * down
        if o.price < limit:
            return Denial(RC.PRICE_OUT_OF_COLLAR, f"sell at {o.price:g} < {limit:g} ({pct:g}% below {band[1]:g})")
    return None


def check_strategy(o: OrderRequest, c: EvalContext) -> Outcome:
    p = c.profile
    sid = o.strategy_id.casefold()  # the lists are case-folded at load: "Martingale" is "martingale"
    if sid in c.config.global_blacklist:
        return Denial(RC.STRATEGY_NOT_ALLOWED, f"strategy {o.strategy_id!r} is globally blacklisted")
    if sid in p.blacklist:
        return Denial(RC.STRATEGY_NOT_ALLOWED, f"strategy {o.strategy_id!r} blacklisted by profile {p.name!r}")
    if p.whitelist and sid not in p.whitelist:
        return Denial(RC.STRATEGY_NOT_ALLOWED, f"strategy {o.strategy_id!r} not in profile {p.name!r} whitelist")
    return None


# -- 9..13: limits ---------------------------------------------------------


def check_leverage(o: OrderRequest, c: EvalContext) -> Outcome:
    limit = c.profile.allowed_leverage
    if o.leverage > limit:
        return Denial(RC.LEVERAGE_EXCEEDS_LIMIT, f"leverage={o.leverage} > allowed_leverage={limit}")
    return None


def check_order_rate(o: OrderRequest, c: EvalContext) -> Outcome:
    limit = c.config.gate.max_orders_per_s
    recent = c.state.recent_approvals(o.account, c.now)
    if recent >= limit:
        return Denial(RC.ORDER_RATE_EXCEEDED, f"orders_last_1s={recent} >= max_orders_per_s={limit}")
    if c.state.messages:
        sent = c.state.recent_messages(o.account, c.now) + recent
        cap = c.config.gate.max_messages_per_s
        if sent >= cap:
            return Denial(
                RC.ORDER_RATE_EXCEEDED, f"messages_last_1s={sent} (orders, cancels, edits) >= max_messages_per_s={cap}"
            )
    return None


def _pnl_pct(now_equity: float, start_equity: float) -> float:
    if start_equity <= 0:
        return -math.inf  # no meaningful baseline: treat as breached (fail closed)
    return (now_equity - start_equity) / start_equity * 100.0


# 11-12a read only the account's state and profile: the `*_denial` functions say
# what blocks an order that does not reduce a position (core.verdicts asks them too).


def baseline_denial(s: AccountState) -> Denial | None:
    if s.baseline_unknown:
        return Denial(
            RC.BASELINE_UNKNOWN,
            f"{'/'.join(s.baseline_unknown)} start equity unknown (lost baseline store, clock went back, or the "
            "shared store not reached): blocked until known, the period ends or `riskgate baseline set` sets it",
        )
    return None


def daily_loss_denial(s: AccountState, p: ProfileConfig) -> Denial | None:
    pct = _pnl_pct(s.equity, s.day_start_equity)
    limit = p.max_daily_loss_pct
    if pct <= limit:
        return Denial(RC.DAILY_LOSS_LIMIT, f"daily_pnl_pct={pct:.3f} <= max_daily_loss_pct={limit}")
    return None


def weekly_loss_denial(s: AccountState, p: ProfileConfig) -> Denial | None:
    pct = _pnl_pct(s.equity, s.week_start_equity)
    limit = p.max_weekly_loss_pct
    if pct <= limit:
        return Denial(RC.WEEKLY_LOSS_LIMIT, f"weekly_pnl_pct={pct:.3f} <= max_weekly_loss_pct={limit}")
    return None


def drawdown_denial(s: AccountState, p: ProfileConfig) -> Denial | None:
    limit, peak = p.max_drawdown_pct, s.peak_equity
    if limit is None or peak is None or peak <= 0:
        return None
    drawdown = (peak - s.equity) / peak * 100.0
    if drawdown > limit:
        return Denial(
            RC.DRAWDOWN_LIMIT, f"equity {drawdown:.3f}% below the week's peak {peak:,.2f} > max_drawdown_pct={limit}"
        )
    return None


def check_baseline_known(o: OrderRequest, c: EvalContext) -> Outcome:
    return None if c.reduces else baseline_denial(c.book.state)


def check_daily_loss(o: OrderRequest, c: EvalContext) -> Outcome:
    return None if c.reduces else daily_loss_denial(c.book.state, c.profile)


def check_weekly_loss(o: OrderRequest, c: EvalContext) -> Outcome:
    return None if c.reduces else weekly_loss_denial(c.book.state, c.profile)


def check_drawdown(o: OrderRequest, c: EvalContext) -> Outcome:
    return None if c.reduces else drawdown_denial(c.book.state, c.profile)


def check_cooldown(o: OrderRequest, c: EvalContext) -> Outcome:
    until = c.book.state.cooldown_until
    if until is not None and not c.reduces and c.wall < until:
        return Denial(
            RC.LOSS_COOLDOWN,
            f"a loss limit tripped: new positions blocked until {until.isoformat()} (cooldown_minutes)",
        )
    return None


def check_open_positions(o: OrderRequest, c: EvalContext) -> Outcome:
    if not c.opens_new():
        return None
    limit = c.profile.max_open_positions
    pending = c.state.opening_keys.get(o.account)
    in_flight = 0
    if pending:
        in_flight = sum(1 for key in pending if key not in c.book.positions and key != (o.symbol, o.exchange))
    count = c.book.open_count + in_flight
    if count >= limit:
        return Denial(RC.MAX_OPEN_POSITIONS, f"open_positions={count} >= max_open_positions={limit}")
    return None


# -- 14..16: size ----------------------------------------------------------


def check_single_trade_risk(o: OrderRequest, c: EvalContext) -> Outcome:
    if c.reduces:
        return None
    equity = c.book.state.equity
    limit = c.profile.max_single_trade_risk_pct
    unit_risk = abs(o.price - o.stop_price) if o.stop_price is not None else c.value_price
    max_qty = limit / 100.0 * equity / unit_risk if equity > 0 else 0.0
    if o.quantity <= max_qty:
        return None
    pct = o.quantity * unit_risk / equity * 100.0 if equity > 0 else math.inf
    return Scale(
        RC.SINGLE_TRADE_RISK,
        max_qty,
        f"risk_pct={pct:.4f} > max_single_trade_risk_pct={limit} (equity={equity:.2f}, max_qty={max_qty:.8g})",
    )


def _exposure(o: OrderRequest, c: EvalContext, cap: float, current: float, code: RC, what: str) -> Scale | None:
    # Compared in quantity, as the scaled quantity will be: re-asking with the
    # fitted quantity must pass, whatever the float rounding of notionals.
    headroom = cap - current
    max_qty = c.reducible_qty() + max(0.0, headroom) / c.value_price
    if o.quantity <= max_qty:
        return None
    added = c.incremental_notional(o.quantity, c.value_price)
    return Scale(
        code,
        max_qty,
        f"{what}_notional={current + added:.2f} > max_notional_usd={cap} (in use={current:.2f}, max_qty={max_qty:.8g})",
    )


def check_exposure(o: OrderRequest, c: EvalContext) -> Outcome:
    st = c.state
    tightest: Scale | None = None
    ex_cfg = c.config.exchanges.get(o.exchange)
    ex_cap = ex_cfg.max_notional_usd if ex_cfg is not None else None
    # What each cap holds now (micro-USD): positions at the marks, and what orders in flight reserve.
    ex_held = ex_reserved = acct_held = 0
    if ex_cap is not None:
        ex_held, ex_reserved = st.exchange_units(o.exchange, c.now)
        current = (ex_held + ex_reserved) / UNITS_PER_USD
        tightest = _exposure(o, c, ex_cap, current, RC.EXCHANGE_EXPOSURE_LIMIT, "exchange")
    cap = c.account.max_notional_usd
    if cap is not None:
        acct_held = st.book_units_at_mark(c.book, c.now)
        current = acct_held / UNITS_PER_USD + st.reserved_usd(o.account)
        out = _exposure(o, c, cap, current, RC.ACCOUNT_EXPOSURE_LIMIT, "account")
        if out is not None and (tightest is None or out.max_quantity < tightest.max_quantity):
            tightest = out
    if c.config.store.backend == "postgresql":
        # Several instances: each cap is spent only within the slice this instance leases.
        # (The pass is the common case: nothing is built for it.)
        leases, price, free, qty = st.leases, c.value_price, c.reducible, o.quantity
        if ex_cap is not None:
            room = room_units(leases.get(("exchange", o.exchange)), ex_held, ex_reserved, c.now)
            if qty > free + room / UNITS_PER_USD / price:
                out = _budget(o, c, room, "exchange")
                if tightest is None or out.max_quantity < tightest.max_quantity:
                    tightest = out
        if cap is not None:
            reserved = st.reserved_units_by_account.get(o.account, 0)
            room = room_units(leases.get(("account", o.account)), acct_held, reserved, c.now)
            if qty > free + room / UNITS_PER_USD / price:
                out = _budget(o, c, room, "account")
                if tightest is None or out.max_quantity < tightest.max_quantity:
                    tightest = out
    return tightest


def _budget(o: OrderRequest, c: EvalContext, room: int, what: str) -> Scale:
    max_qty = c.reducible_qty() + room / UNITS_PER_USD / c.value_price
    added = c.incremental_notional(o.quantity, c.value_price)
    return Scale(
        RC.BUDGET_UNAVAILABLE,
        max_qty,
        f"{what} cap: notional {added:.2f} > {room / UNITS_PER_USD:.2f} left of this instance's lease"
        f" (max_qty={max_qty:.8g})",
    )


def _warning_factor(sig: RiskSignal, gate: GateConfig) -> float:
    """The scale-down under WARNING or tier REDUCED. "fixed": warning_scale_factor.
    "risk_score": WARNING scales by 1 - overall_risk_score, kept within
    [warning_scale_factor, 1] (no score, or one outside [0, 1]: warning_scale_factor); tier REDUCED by
    reduced_tier_scale_factor; both: the smaller."""
    if gate.warning_scaling != "risk_score":
        return gate.warning_scale_factor
    factor = 1.0
    if sig.risk_level == "WARNING":
        score = sig.overall_risk_score
        # A score outside [0, 1] (or none, or NaN) is not trusted to size anything: the fixed factor.
        by_score = 1.0 - score if score is not None and 0.0 <= score <= 1.0 else gate.warning_scale_factor
        factor = min(1.0, max(gate.warning_scale_factor, by_score))
    if (sig.ess_tier_recommendation or "").upper() == "REDUCED":
        factor = min(factor, gate.reduced_tier_scale_factor)
    return factor


def check_risk_warning(o: OrderRequest, c: EvalContext) -> Outcome:
    sig = c.state.signal
    if sig is None or c.reduces:
        return None
    if sig.risk_level == "WARNING" or (sig.ess_tier_recommendation or "").upper() == "REDUCED":
        factor = _warning_factor(sig, c.config.gate)
        if factor >= 1.0:
            return None
        return Scale(
            RC.RISK_WARNING_SCALE,
            o.quantity * factor,
            f"risk_level={sig.risk_level} tier={sig.ess_tier_recommendation}: scale by {factor}",
        )
    return None


Check = Callable[[OrderRequest, EvalContext], Outcome]

#: The evaluation order of docs/checks.md (after check 0, validation).
CHECKS: tuple[Check, ...] = (
    check_journal,
    check_ess_fresh,
    check_ess_halt,
    check_risk_fresh,
    check_risk_critical,
    check_ess_action,
    check_account_known,
    check_duplicate_order,
    check_account_fresh,
    check_shared_state,
    check_reduction_budget,
    check_reduce_only_mode,
    check_reduce_only,
    check_order_size,
    check_price_pause,
    check_price_collar,
    check_strategy,
    check_leverage,
    check_order_rate,
    check_baseline_known,
    check_daily_loss,
    check_weekly_loss,
    check_drawdown,
    check_cooldown,
    check_open_positions,
    check_single_trade_risk,
    check_exposure,
    check_risk_warning,
)


def _decimals(step: float) -> int:
    text = repr(step)
    return len(text.split(".", 1)[1].rstrip("0")) if "." in text and "e" not in text else 0


#: Which check of docs/checks.md decides with each code (for `riskgate journal explain`).
DECIDED_BY: dict[RC, str] = {
    RC.INVALID_ORDER: "0. validation (or 6: another exchange than the account's; 7: a reduce-only that grows)",
    RC.JOURNAL_UNAVAILABLE: "0. the journal can record the decision",
    RC.ESS_STATE_STALE: "1. ESS state fresh and readable",
    RC.ESS_HALT_ACTIVE: "2. no ESS halt",
    RC.OVERRIDE_APPLIED: "2-5. an approved override let a reduce-only order through a halt, stale Risk v3 or CRITICAL",
    RC.RISK_STATE_STALE: "3. Risk v3 signal fresh",
    RC.GLOBAL_RISK_CRITICAL: "4. risk level not CRITICAL",
    RC.RISK_V3_ESS_ACTION_REQUIRED: "5. no ESS action required by Risk v3",
    RC.UNKNOWN_ACCOUNT: "6. account configured",
    RC.DUPLICATE_ORDER: "6. order id not in flight nor recently decided; its terms not repeated past gate.max_repeats",
    RC.ACCOUNT_STATE_STALE: "7. account state fresh and usable",
    RC.MAX_ORDER_QUANTITY: "7a. order quantity within the symbol's max_qty",
    RC.MAX_ORDER_NOTIONAL: "7a. order notional within the profile's max_order_notional_usd",
    RC.PRICE_SPIKE_PAUSE: "7b. no pause on the symbol after a price spike (orders that reduce pass)",
    RC.PRICE_REFERENCE_STALE: "7b. a fresh price from the prices source for a symbol it covers (reductions fall back)",
    RC.PRICE_OUT_OF_COLLAR: "7b. price within the collar around the reference price (and its mark a window ago)",
    RC.STRATEGY_NOT_ALLOWED: "8. strategy allowed",
    RC.LEVERAGE_EXCEEDS_LIMIT: "9. leverage within the profile's",
    RC.ORDER_RATE_EXCEEDED: "10. order rate",
    RC.BASELINE_UNKNOWN: "11. day and week start equity known",
    RC.DAILY_LOSS_LIMIT: "11. daily loss limit",
    RC.WEEKLY_LOSS_LIMIT: "12. weekly loss limit",
    RC.DRAWDOWN_LIMIT: "12a. drawdown from the week's equity peak",
    RC.LOSS_COOLDOWN: "12b. cooldown after a loss limit tripped",
    RC.MAX_OPEN_POSITIONS: "13. open positions",
    RC.SINGLE_TRADE_RISK: "14. single-trade risk",
    RC.EXCHANGE_EXPOSURE_LIMIT: "15. exchange exposure cap",
    RC.ACCOUNT_EXPOSURE_LIMIT: "15. account exposure cap",
    RC.SHARED_STATE_STALE: "7c. several instances: the shared halt state confirmed within store.max_age_s",
    RC.REDUCE_ONLY_MODE: "7d. no operator's reduce-only halt, unless the order reduces a position",
    RC.BUDGET_UNAVAILABLE: "7c/15a. several instances: within the position's reduction budget / the cap's budget this"
    " instance leases",
    RC.RISK_WARNING_SCALE: "16. Risk v3 WARNING scale-down",
    RC.ALL_CHECKS_PASSED: "17. every check passed",
    RC.GATE_UNAVAILABLE: "the gate did not decide in time (not started, down, or late)",
    RC.CLIENT_NOT_PERMITTED: "the API: the client's token is not for this account ([api.clients.NAME] accounts)",
}

#: The source a STALE code blocks on.
STALE_SOURCE: dict[RC, str] = {
    RC.ESS_STATE_STALE: "ess",
    RC.RISK_STATE_STALE: "risk_v3",
    RC.ACCOUNT_STATE_STALE: "account",
}
_AFTER_ACCOUNT = (
    RC.MAX_ORDER_QUANTITY,
    RC.MAX_ORDER_NOTIONAL,
    RC.PRICE_SPIKE_PAUSE,
    RC.PRICE_REFERENCE_STALE,
    RC.PRICE_OUT_OF_COLLAR,
    RC.STRATEGY_NOT_ALLOWED,
    RC.LEVERAGE_EXCEEDS_LIMIT,
    RC.ORDER_RATE_EXCEEDED,
    RC.BASELINE_UNKNOWN,
    RC.DAILY_LOSS_LIMIT,
    RC.WEEKLY_LOSS_LIMIT,
    RC.DRAWDOWN_LIMIT,
    RC.LOSS_COOLDOWN,
    RC.MAX_OPEN_POSITIONS,
    RC.SINGLE_TRADE_RISK,
    RC.EXCHANGE_EXPOSURE_LIMIT,
    RC.ACCOUNT_EXPOSURE_LIMIT,
    RC.SHARED_STATE_STALE,
    RC.REDUCE_ONLY_MODE,
    RC.BUDGET_UNAVAILABLE,
    RC.RISK_WARNING_SCALE,
    RC.ALL_CHECKS_PASSED,
)
#: The sources a decision with this code found fresh (it passed their checks).
FRESH_SOURCES: dict[RC, tuple[str, ...]] = {
    RC.ESS_HALT_ACTIVE: ("ess",),
    RC.RISK_STATE_STALE: ("ess",),
    RC.GLOBAL_RISK_CRITICAL: ("ess", "risk_v3"),
    RC.RISK_V3_ESS_ACTION_REQUIRED: ("ess", "risk_v3"),
    RC.UNKNOWN_ACCOUNT: ("ess", "risk_v3"),
    RC.DUPLICATE_ORDER: ("ess", "risk_v3"),
    RC.ACCOUNT_STATE_STALE: ("ess", "risk_v3"),
    **dict.fromkeys(_AFTER_ACCOUNT, ("ess", "risk_v3", "account")),
    RC.OVERRIDE_APPLIED: ("ess", "account"),  # Risk v3 may have been stale: the override let it through
}


def floor_to_lot(quantity: float, step: float) -> float:
    """Round down to a multiple of `step`, never above `quantity`."""
    if quantity <= 0:
        return 0.0
    # Enough decimals for the step's own (2.5 keeps one), plus two for float noise.
    decimals = max(0, -math.floor(math.log10(step)) + 2) if step < 1 else _decimals(step)
    n = math.floor(quantity / step + 1e-9)
    result = round(n * step, decimals)
    while result > quantity and n > 0:
        n -= 1
        result = round(n * step, decimals)
    return result if n > 0 else 0.0
