"""Guarded exchange clients: no order reaches an exchange without a gate decision.

Wrap the client once; the wrapper is the only way to it. Every order is asked
of the gate first: a block raises `OrderBlocked` (carrying the result) and the
client is never called; a scale-down sends `adjusted_quantity`; an allow sends
the order as asked. What the exchange answers (fills, a rejection, an error)
is reported back, so reservations are released and positions move.

- `GuardedExchange` / `AsyncGuardedExchange`: ccxt-style clients,
  `create_order(symbol, type, side, amount, price=None, params={})`.
- `GuardedAdapter` / `AsyncGuardedAdapter`: the execution service's adapters,
  `submit_order(symbol, side, quantity, price, leverage=None) -> dict` with
  `order_id`, `filled_qty`, `avg_price`, `status`.

Account, exchange and strategy are bound when wrapping or given per call.

Cancels always pass, halted or not (they only reduce risk; a desk's first move
in an emergency): `cancel_order`, `cancel_orders`, `cancel_all_orders` reach
the client without a gate decision, are journaled, and release what they
ended. `edit_order` is a new order for the gate (edited size and price).
ccxt's shortcuts (`create_market_buy_order`, `create_limit_sell_order`, ...)
go through `create_order`. With `ess.cancel_open_orders_on_halt`, every
guarded client cancels its resting orders when a halt begins (told by the
gate, run on the supervisor's halt thread, never the gate's).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from supervisor.clock import SystemClock
from supervisor.core.evaluate import block_result
from supervisor.core.messages import Fill, OrderOutcome, OrderRequest, OutcomeStatus, RiskGateResult
from supervisor.core.orders import ORDER_FIELDS, config_symbol, order_id_of, validate_order
from supervisor.core.reasons import ReasonCode
from supervisor.core.values import plain_float, plain_str, shorten
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger

__all__ = [
    "AsyncGuardedAdapter",
    "AsyncGuardedExchange",
    "GuardedAdapter",
    "GuardedExchange",
    "OrderBlocked",
    "config_symbol",
]

log = get_logger("riskgate.execution")

# What the exchange said, in the words of OrderOutcome. Anything else: the order still lives.
_TERMINAL: dict[str, OutcomeStatus] = {
    "closed": "filled",
    "filled": "filled",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "expired": "expired",
    "rejected": "rejected",
    "error": "error",
    "failed": "error",
}
# Read-only calls a guarded ccxt client passes through; order entry only via create_order.
_PASSTHROUGH_PREFIXES = ("fetch_", "load_", "watch_")
_PASSTHROUGH = frozenset({"id", "name", "markets", "symbols", "currencies", "has", "timeframes", "close"})


class OrderBlocked(RiskgateError):  # noqa: N818 - public name since the first release
    """The gate blocked the order; `result` says why. Nothing was sent."""

    def __init__(self, result: RiskGateResult) -> None:
        super().__init__(f"{result.reason_code}: {result.reason}")
        self.result = result


def _quantity(value: Any) -> float | None:
    """A finite number >= 0 from what exchanges send: a number, a Decimal, a numeric string."""
    number = plain_float(value)
    if number is None and isinstance(value, (Decimal, str)):
        try:
            number = float(value)
        except (ValueError, ArithmeticError):
            return None
        if not math.isfinite(number):
            return None
    return number if number is not None and number >= 0 else None


class _Guard:
    """Ask before sending, report after. Shared by every wrapper."""

    def __init__(
        self,
        supervisor: Any,
        account: str | None,
        exchange: str | None,
        strategy_id: str | None,
        symbol_map: Callable[[str], str],
    ) -> None:
        self.sup = supervisor
        self.defaults = {"account": account, "exchange": exchange, "strategy_id": strategy_id}
        self.symbol_map = symbol_map
        self._filled: dict[str, float] = {}  # order id -> quantity already reported as filled
        self._live: dict[str, dict[str, Any]] = {}  # exchange's order id -> our order, until it ends

    def order(self, symbol: Any, side: Any, quantity: Any, price: Any, **given: Any) -> dict[str, Any]:
        """The order as the gate will judge it. When it is valid, every value is
        already the plain, normalised one (a `str` or `float` subclass read as
        what it holds), and that is what the exchange is sent too."""
        fields = {k: (v if given.get(k) is None else given[k]) for k, v in self.defaults.items()}
        fields.update(
            symbol=self.symbol_map(symbol) if isinstance(symbol, str) else symbol,
            side=side,
            quantity=quantity,
            price=price,
            leverage=given.get("leverage"),
            reduce_only=given.get("reduce_only"),
            stop_price=given.get("stop_price"),
            reference_price=given.get("reference_price"),
        )
        fields["order_id"] = order_id_of(given)
        valid = validate_order(fields, self.sup.config)
        if isinstance(valid, OrderRequest):
            return {name: getattr(valid, name) for name in ORDER_FIELDS}
        return fields  # the gate answers INVALID_ORDER; nothing is sent

    def decided(self, order: Mapping[str, Any], result: RiskGateResult) -> float:
        """The quantity to send, or raise OrderBlocked."""
        fields = {
            "order_id": result.order_id,
            "account": order.get("account"),
            "symbol": order.get("symbol"),
            "side": order.get("side"),
            "requested": order.get("quantity"),
        }
        if result.decision == "block":
            log.warning("order_blocked", reason_code=str(result.reason_code), reason=result.reason, **fields)
            raise OrderBlocked(result)
        log.info(
            "order_sent",
            decision=result.decision,
            reason_code=str(result.reason_code),
            sent=result.adjusted_quantity,
            **fields,
        )
        return result.adjusted_quantity

    def failed(self, order: Mapping[str, Any], exc: BaseException) -> None:
        log.error("order_failed", order_id=order["order_id"], error=f"{type(exc).__name__}: {exc}")
        self.sup.report_order_outcome(OrderOutcome(order["order_id"], "error", account=order["account"]))

    def update(
        self, order: Mapping[str, Any], status: Any, filled: Any, avg_price: Any, exchange_id: Any = None
    ) -> None:
        """Report what the exchange says of an order: new fills, that it rests,
        and its end if it ended. A filled quantity that cannot be read is never
        taken as "nothing filled": the order's end is then reported as filled
        in full, which keeps its notional reserved until a fill or a snapshot
        shows the position."""
        oid = order["order_id"]
        ended = _TERMINAL.get(str(status).lower()) if status is not None else None
        total = _quantity(filled)
        if total is None:
            if filled is not None:
                log.warning("fill_unreadable", order_id=oid, filled=shorten(filled))
            total = order["quantity"] if ended == "filled" or filled is not None else 0.0
        new = total - self._filled.get(oid, 0.0)
        if new > 0 and _quantity(filled) is not None:
            price = _quantity(avg_price) or order["price"]
            self.sup.report_fill(
                Fill(order["account"], order["exchange"], order["symbol"], order["side"], new, price, oid)
            )
            self._filled[oid] = total
        if ended is not None:
            self.sup.report_order_outcome(OrderOutcome(oid, ended, total, account=order["account"]))
            self._filled.pop(oid, None)
            if exchange_id is not None:
                self._live.pop(str(exchange_id), None)
        elif exchange_id is not None:
            if str(exchange_id) not in self._live:  # it rests: it keeps its reservation until it ends
                self.sup.report_order_outcome(OrderOutcome(oid, "open", total, account=order["account"]))
            self._live[str(exchange_id)] = dict(order)

    def live_order(self, exchange_id: Any) -> dict[str, Any] | None:
        return self._live.get(str(exchange_id))

    def live_orders(self, symbol: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(exchange id, order) of every resting order (of `symbol`, a config symbol, when given)."""
        return [(xid, o) for xid, o in list(self._live.items()) if symbol is None or o.get("symbol") == symbol]

    def message(self, account: Any = None) -> None:
        """A cancel or edit was sent: it counts toward the account's message rate."""
        report = getattr(self.sup, "report_message", None)
        account = account or self.defaults["account"]
        if callable(report) and isinstance(account, str):
            report(account)

    def journal(self, kind: str, account: Any = None, **detail: Any) -> None:
        journal = getattr(self.sup, "journal", None)
        if journal is not None:
            journal.event(_now(self), kind, "execution", account or self.defaults["account"], **detail)


#: ccxt `params` a guarded client passes on by default. ccxt merges `params`
#: into the exchange's request over what it built, so any other key could
#: replace the quantity, side, price or symbol the gate judged.
DEFAULT_ALLOWED_PARAMS = frozenset({"reduceOnly", "clientOrderId", "timeInForce", "postOnly"})


def _ccxt_call(
    guard: _Guard,
    symbol: str,
    type: str,  # noqa: A002 - ccxt's own parameter name
    side: str,
    amount: Any,
    price: Any,
    params: Mapping[str, Any] | None,
    over: dict[str, Any],
    allowed: frozenset[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    params = dict(params or {})
    refused = sorted(str(k) for k in params if k not in allowed)
    if refused:
        why = (
            f"params: {', '.join(map(repr, refused[:5]))} not allowed behind the gate"
            f" (they could change what the exchange is sent; allowed: {', '.join(sorted(allowed))})"
        )
        result = block_result(ReasonCode.INVALID_ORDER, why, order_id_of(over), _now(guard))
        log.warning("order_blocked", reason_code=str(result.reason_code), reason=why, order_id=result.order_id)
        raise OrderBlocked(result)
    reference = over.pop("reference_price", None)
    said, flagged = over.get("reduce_only"), params.get("reduceOnly")
    if said is not None and flagged is not None and bool(said) != bool(flagged):
        why = f"reduce_only={said!r} and params reduceOnly={flagged!r} disagree: which is meant?"
        result = block_result(ReasonCode.INVALID_ORDER, why, order_id_of(over), _now(guard))
        log.warning("order_blocked", reason_code=str(result.reason_code), reason=why, order_id=result.order_id)
        raise OrderBlocked(result)
    over.setdefault("reduce_only", flagged)
    if over.get("order_id") is None and params.get("clientOrderId") is not None:
        over["order_id"] = params["clientOrderId"]  # the exchange's client id is the order's id
    order = guard.order(
        symbol, side, amount, price if price is not None else reference, reference_price=reference, **over
    )
    if order.get("reduce_only") is True:
        params["reduceOnly"] = True  # judged reduce-only: the exchange enforces it too
    return order, params


def _now(guard: _Guard) -> datetime:
    clock = getattr(guard.sup, "clock", None)
    return clock.now() if clock is not None else SystemClock().now()


_NO_REFERENCE = (
    "reference_price: required for an order without a price (a market order): the gate sizes its risk with a price"
)


def _without_reference(result: RiskGateResult, price: Any, over: Mapping[str, Any]) -> RiskGateResult:
    """A market order asked without `reference_price` is invalid for want of a
    price: say so in the caller's terms, not the gate's ("price")."""
    if price is None and over.get("reference_price") is None and result.reason_code is ReasonCode.INVALID_ORDER:
        return replace(result, reason=_NO_REFERENCE)
    return result


def _ccxt_args(order: Mapping[str, Any], symbol: Any, kind: Any, quantity: float, price: Any) -> tuple[Any, ...]:
    """ccxt's positional arguments, in the plain values the gate judged (a
    market order keeps price None: its gate price was the reference)."""
    return (plain_str(symbol), plain_str(kind), order["side"], quantity, None if price is None else order["price"])


def _adapter_args(order: Mapping[str, Any], symbol: Any, quantity: float, leverage: Any) -> tuple[Any, ...]:
    return (plain_str(symbol), order["side"], quantity, order["price"], None if leverage is None else order["leverage"])


def _adapter_flags(order: Mapping[str, Any]) -> dict[str, Any]:
    """A reduce-only order tells the adapter so (`reduce_only=True`): an adapter
    that cannot take it fails the order rather than send it as an opening one."""
    return {"reduce_only": True} if order.get("reduce_only") is True else {}


class _Guarded:
    """Holds the client out of reach: only order entry through the gate,
    cancels, and read-only calls, pass."""

    def __init__(
        self,
        client: Any,
        supervisor: Any,
        *,
        account: str | None = None,
        exchange: str | None = None,
        strategy_id: str | None = None,
        symbol_map: Callable[[str], str] = config_symbol,
        allowed_params: Iterable[str] = DEFAULT_ALLOWED_PARAMS,
    ) -> None:
        self._client = client
        self._guard = _Guard(supervisor, account, exchange, strategy_id, symbol_map)
        self._allowed_params = frozenset(allowed_params)
        self._loop: asyncio.AbstractEventLoop | None = None  # an async client's, once it has sent an order
        subscribe = getattr(supervisor, "on_halt", None)
        if callable(subscribe):
            subscribe(self._on_halt)

    # Where the exchange's answer keeps (status, filled quantity, average price, its order id).
    _KEYS = ("status", "filled", "average", "id")

    def __getattr__(self, name: str) -> Any:
        if name in _PASSTHROUGH or name.startswith(_PASSTHROUGH_PREFIXES):
            return getattr(self._client, name)
        raise AttributeError(f"{name!r} is not exposed behind the risk gate: orders go through the gate")

    def _report(self, order: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        status, filled, average, exchange_id = (response.get(k) for k in self._KEYS)
        self._guard.update(order, status, filled, average, exchange_id)

    def on_order_update(self, response: Mapping[str, Any]) -> None:
        """Feed later states of a resting order (from fetch_order, a websocket):
        new fills and its end are reported, which releases its reservation."""
        order = self._guard.live_order(response.get(self._KEYS[3]))
        if order is not None:
            self._report(order, response)

    # -- cancels ------------------------------------------------------------------------
    def _cancelled(self, exchange_id: Any, response: Any) -> None:
        """A cancel the exchange accepted ends the order: as the answer says
        (filled, if it filled first), else cancelled; its reservation goes."""
        order = self._guard.live_order(exchange_id)
        if order is None:
            return
        answer = response if isinstance(response, Mapping) else {}
        status = answer.get(self._KEYS[0])
        if status is None:
            status = "canceled"  # accepted without a word: cancelled
        elif str(status).lower() not in _TERMINAL:
            return  # a cancel still pending (the order is "open"): it lives on until an update ends it
        self._guard.update(order, status, answer.get(self._KEYS[1]), answer.get(self._KEYS[2]), exchange_id)

    def _journal_cancel(self, what: str, target: Any, error: BaseException | None = None) -> None:
        order = self._guard.live_order(target) if not isinstance(target, (list, tuple)) else None
        self._guard.message(order.get("account") if order else None)
        self._guard.journal(
            "order_cancel",
            order.get("account") if order else None,
            call=what,
            exchange_order_id=shorten(target, 200),
            order_id=order.get("order_id") if order else None,
            ok=error is None,
            error=None if error is None else f"{type(error).__name__}: {shorten(str(error), 200)}",
        )

    def _cancelled_many(self, ids: list[str], response: Any) -> None:
        """After `cancel_orders`: every id is a message (the journal line counted the
        first); each ends as the answer lists it, or as cancelled when it is not listed."""
        for exchange_id in ids[1:]:
            order = self._guard.live_order(exchange_id)
            self._guard.message(order.get("account") if order else None)
        answered = (
            {str(i.get("id")): i for i in response if isinstance(i, Mapping)} if isinstance(response, list) else {}
        )
        for exchange_id in ids:
            self._cancelled(exchange_id, answered.get(str(exchange_id), {}))

    def _cancelled_all(self, symbol: Any, response: Any) -> None:
        """An answer listing orders ends those it lists (as each says); an answer
        that lists none ends every resting order it was asked to cancel."""
        wanted = self._guard.symbol_map(symbol) if isinstance(symbol, str) else None
        if isinstance(response, list):
            for item in response:
                if isinstance(item, Mapping) and item.get(self._KEYS[3]) is not None:
                    self._cancelled(str(item.get(self._KEYS[3])), item)
            return
        for exchange_id, _ in self._guard.live_orders(wanted):
            self._cancelled(exchange_id, {})

    def _on_halt(self, reason: str) -> None:
        """A halt began (on the supervisor's halt thread): cancel every resting order, once."""
        config = getattr(self._guard.sup, "config", None)
        if config is None or not config.ess.cancel_open_orders_on_halt:
            return
        resting = self._guard.live_orders()
        if not resting:
            return
        self._guard.journal("cancel_on_halt", None, reason=shorten(reason, 300), orders=len(resting))
        self._cancel_resting(resting)

    def _cancel_resting(self, resting: list[tuple[str, dict[str, Any]]]) -> None:
        for exchange_id, order in resting:
            try:
                self._cancel_one(exchange_id, order)
            except Exception as exc:  # noqa: BLE001 - journaled; the other orders are still cancelled
                log.error("cancel_on_halt_failed", exchange_order_id=exchange_id, error=repr(exc))

    def _cancel_one(self, exchange_id: str, order: Mapping[str, Any]) -> None:
        raise NotImplementedError


class _AsyncGuarded(_Guarded):
    """An async client: cancel-on-halt runs its cancels on the client's own event loop."""

    def _cancel_resting(self, resting: list[tuple[str, dict[str, Any]]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            log.error("cancel_on_halt_no_loop", orders=len(resting), detail="the client's event loop is gone")
            return

        async def cancel_all() -> None:
            for exchange_id, order in resting:
                try:
                    await self._cancel_one_async(exchange_id, order)
                except Exception as exc:  # noqa: BLE001 - journaled; the other orders are still cancelled
                    log.error("cancel_on_halt_failed", exchange_order_id=exchange_id, error=repr(exc))

        asyncio.run_coroutine_threadsafe(cancel_all(), loop)

    async def _cancel_one_async(self, exchange_id: str, order: Mapping[str, Any]) -> None:
        raise NotImplementedError


class GuardedExchange(_Guarded):
    """A ccxt-style client behind the gate.

    Besides ccxt's arguments, `create_order` takes (never sent to the exchange):
    `reference_price=` (required for market orders: the gate sizes risk with a
    price), `stop_price=` (the protective stop the trade's risk is measured to),
    `leverage=`, and `account=` / `exchange=` / `strategy_id=` when not bound.
    `params={"reduceOnly": True}` marks the order reduce-only for the gate too.
    """

    def create_order(
        self,
        symbol: str,
        type: str,  # noqa: A002 - ccxt's own parameter name
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
        **over: Any,
    ) -> Any:
        order, params = _ccxt_call(
            self._guard, symbol, type, side, amount, price, params, dict(over), self._allowed_params
        )
        quantity = self._guard.decided(order, _without_reference(self._guard.sup.evaluate(order), price, over))
        try:
            response = self._client.create_order(*_ccxt_args(order, symbol, type, quantity, price), params)
        except Exception as exc:
            self._guard.failed(order, exc)
            raise
        self._report({**order, "client_symbol": symbol}, response)
        return response

    # ccxt's shortcuts: the same order, through the gate.
    def create_market_order(
        self, symbol: str, side: str, amount: float, price: float | None = None, params: Any = None, **over: Any
    ) -> Any:
        return self.create_order(symbol, "market", side, amount, None, params, **_reference(over, price))

    def create_limit_order(
        self, symbol: str, side: str, amount: float, price: float, params: Any = None, **over: Any
    ) -> Any:
        return self.create_order(symbol, "limit", side, amount, price, params, **over)

    def create_market_buy_order(self, symbol: str, amount: float, params: Any = None, **over: Any) -> Any:
        return self.create_order(symbol, "market", "buy", amount, None, params, **over)

    def create_market_sell_order(self, symbol: str, amount: float, params: Any = None, **over: Any) -> Any:
        return self.create_order(symbol, "market", "sell", amount, None, params, **over)

    def create_limit_buy_order(self, symbol: str, amount: float, price: float, params: Any = None, **over: Any) -> Any:
        return self.create_order(symbol, "limit", "buy", amount, price, params, **over)

    def create_limit_sell_order(self, symbol: str, amount: float, price: float, params: Any = None, **over: Any) -> Any:
        return self.create_order(symbol, "limit", "sell", amount, price, params, **over)

    def edit_order(
        self,
        id: str,  # noqa: A002 - ccxt's own parameter name
        symbol: str,
        type: str,  # noqa: A002 - ccxt's own parameter name
        side: str,
        amount: float | None = None,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
        **over: Any,
    ) -> Any:
        """A new order for the gate: the edited size and price (the old one's
        reservation stays until the exchange has replaced it)."""
        old = self._guard.live_order(id)
        if amount is None and old is not None:
            amount = old["quantity"]
        order, params = _ccxt_call(
            self._guard, symbol, type, side, amount, price, params, dict(over), self._allowed_params
        )
        quantity = self._guard.decided(order, _without_reference(self._guard.sup.evaluate(order), price, over))
        try:
            response = self._client.edit_order(id, *_ccxt_args(order, symbol, type, quantity, price), params)
        except Exception as exc:
            self._guard.failed(order, exc)
            raise
        self._cancelled(id, {"status": "canceled"})  # replaced
        self._guard.message(order["account"])  # an edit counts toward the message rate
        self._report({**order, "client_symbol": symbol}, response)
        return response

    def cancel_order(self, id: str, symbol: str | None = None, params: Mapping[str, Any] | None = None) -> Any:  # noqa: A002 - ccxt's name
        """Always passes (halted or not): journaled; the order's reservation is released."""
        try:
            response = self._client.cancel_order(id, symbol, dict(params or {}))
        except Exception as exc:
            self._journal_cancel("cancel_order", id, exc)
            raise
        self._journal_cancel("cancel_order", id)
        self._cancelled(id, response)
        return response

    def cancel_orders(self, ids: list[str], symbol: str | None = None, params: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._client.cancel_orders(list(ids), symbol, dict(params or {}))
        except Exception as exc:
            self._journal_cancel("cancel_orders", list(ids), exc)
            raise
        self._journal_cancel("cancel_orders", list(ids))
        self._cancelled_many(list(ids), response)
        return response

    def cancel_all_orders(self, symbol: str | None = None, params: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._client.cancel_all_orders(symbol, dict(params or {}))
        except Exception as exc:
            self._journal_cancel("cancel_all_orders", symbol, exc)
            raise
        self._journal_cancel("cancel_all_orders", symbol)
        self._cancelled_all(symbol, response)
        return response

    def _cancel_one(self, exchange_id: str, order: Mapping[str, Any]) -> None:
        self.cancel_order(exchange_id, order.get("client_symbol"))


def _reference(over: dict[str, Any], price: Any) -> dict[str, Any]:
    """ccxt's `create_market_order(..., price)`: that price is the gate's reference, never sent."""
    if price is not None and over.get("reference_price") is None:
        over["reference_price"] = price
    return over


class AsyncGuardedExchange(_AsyncGuarded):
    """`ccxt.async_support`-style: `await guarded.create_order(...)`."""

    async def create_order(
        self,
        symbol: str,
        type: str,  # noqa: A002 - ccxt's own parameter name
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
        **over: Any,
    ) -> Any:
        order, params = _ccxt_call(
            self._guard, symbol, type, side, amount, price, params, dict(over), self._allowed_params
        )
        result = await self._guard.sup.evaluate_async(order)
        quantity = self._guard.decided(order, _without_reference(result, price, over))
        loop = self._loop = asyncio.get_running_loop()
        try:
            response = await self._client.create_order(*_ccxt_args(order, symbol, type, quantity, price), params)
        except Exception as exc:
            await loop.run_in_executor(None, self._guard.failed, order, exc)
            raise
        await loop.run_in_executor(None, self._report, {**order, "client_symbol": symbol}, response)
        return response

    async def create_market_order(
        self, symbol: str, side: str, amount: float, price: float | None = None, params: Any = None, **over: Any
    ) -> Any:
        return await self.create_order(symbol, "market", side, amount, None, params, **_reference(over, price))

    async def create_limit_order(
        self, symbol: str, side: str, amount: float, price: float, params: Any = None, **over: Any
    ) -> Any:
        return await self.create_order(symbol, "limit", side, amount, price, params, **over)

    async def create_market_buy_order(self, symbol: str, amount: float, params: Any = None, **over: Any) -> Any:
        return await self.create_order(symbol, "market", "buy", amount, None, params, **over)

    async def create_market_sell_order(self, symbol: str, amount: float, params: Any = None, **over: Any) -> Any:
        return await self.create_order(symbol, "market", "sell", amount, None, params, **over)

    async def create_limit_buy_order(
        self, symbol: str, amount: float, price: float, params: Any = None, **over: Any
    ) -> Any:
        return await self.create_order(symbol, "limit", "buy", amount, price, params, **over)

    async def create_limit_sell_order(
        self, symbol: str, amount: float, price: float, params: Any = None, **over: Any
    ) -> Any:
        return await self.create_order(symbol, "limit", "sell", amount, price, params, **over)

    async def edit_order(
        self,
        id: str,  # noqa: A002 - ccxt's own parameter name
        symbol: str,
        type: str,  # noqa: A002 - ccxt's own parameter name
        side: str,
        amount: float | None = None,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
        **over: Any,
    ) -> Any:
        old = self._guard.live_order(id)
        if amount is None and old is not None:
            amount = old["quantity"]
        order, params = _ccxt_call(
            self._guard, symbol, type, side, amount, price, params, dict(over), self._allowed_params
        )
        result = await self._guard.sup.evaluate_async(order)
        quantity = self._guard.decided(order, _without_reference(result, price, over))
        loop = self._loop = asyncio.get_running_loop()
        try:
            response = await self._client.edit_order(id, *_ccxt_args(order, symbol, type, quantity, price), params)
        except Exception as exc:
            await loop.run_in_executor(None, self._guard.failed, order, exc)
            raise
        await loop.run_in_executor(None, self._cancelled, id, {"status": "canceled"})
        await loop.run_in_executor(None, self._guard.message, order["account"])
        await loop.run_in_executor(None, self._report, {**order, "client_symbol": symbol}, response)
        return response

    async def cancel_order(self, id: str, symbol: str | None = None, params: Mapping[str, Any] | None = None) -> Any:  # noqa: A002 - ccxt's name
        loop = asyncio.get_running_loop()
        try:
            response = await self._client.cancel_order(id, symbol, dict(params or {}))
        except Exception as exc:
            await loop.run_in_executor(None, self._journal_cancel, "cancel_order", id, exc)
            raise
        await loop.run_in_executor(None, self._journal_cancel, "cancel_order", id, None)
        await loop.run_in_executor(None, self._cancelled, id, response)
        return response

    async def cancel_orders(
        self, ids: list[str], symbol: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        loop = asyncio.get_running_loop()
        try:
            response = await self._client.cancel_orders(list(ids), symbol, dict(params or {}))
        except Exception as exc:
            await loop.run_in_executor(None, self._journal_cancel, "cancel_orders", list(ids), exc)
            raise
        await loop.run_in_executor(None, self._journal_cancel, "cancel_orders", list(ids), None)
        await loop.run_in_executor(None, self._cancelled_many, list(ids), response)
        return response

    async def cancel_all_orders(self, symbol: str | None = None, params: Mapping[str, Any] | None = None) -> Any:
        loop = asyncio.get_running_loop()
        try:
            response = await self._client.cancel_all_orders(symbol, dict(params or {}))
        except Exception as exc:
            await loop.run_in_executor(None, self._journal_cancel, "cancel_all_orders", symbol, exc)
            raise
        await loop.run_in_executor(None, self._journal_cancel, "cancel_all_orders", symbol, None)
        await loop.run_in_executor(None, self._cancelled_all, symbol, response)
        return response

    async def _cancel_one_async(self, exchange_id: str, order: Mapping[str, Any]) -> None:
        await self.cancel_order(exchange_id, order.get("client_symbol"))


_ADAPTER_KEYS = ("status", "filled_qty", "avg_price", "order_id")


class GuardedAdapter(_Guarded):
    """The original execution service's adapter protocol behind the gate."""

    _KEYS = _ADAPTER_KEYS

    def submit_order(
        self, symbol: str, side: str, quantity: float, price: float, leverage: float | None = None, **over: Any
    ) -> dict[str, Any]:
        order = self._guard.order(symbol, side, quantity, price, leverage=leverage, **over)
        sent = self._guard.decided(order, self._guard.sup.evaluate(order))
        try:
            response = self._client.submit_order(*_adapter_args(order, symbol, sent, leverage), **_adapter_flags(order))
        except Exception as exc:
            self._guard.failed(order, exc)
            raise
        self._report(order, response)
        return dict(response)

    def cancel_order(self, order_id: str) -> Any:
        """Always passes (halted or not): journaled; the order's reservation is released."""
        try:
            response = self._client.cancel_order(order_id)
        except Exception as exc:
            self._journal_cancel("cancel_order", order_id, exc)
            raise
        self._journal_cancel("cancel_order", order_id)
        self._cancelled(order_id, response)
        return response

    def cancel_all_orders(self, symbol: str | None = None) -> Any:
        try:
            response = self._client.cancel_all_orders() if symbol is None else self._client.cancel_all_orders(symbol)
        except Exception as exc:
            self._journal_cancel("cancel_all_orders", symbol, exc)
            raise
        self._journal_cancel("cancel_all_orders", symbol)
        self._cancelled_all(symbol, response)
        return response

    def _cancel_one(self, exchange_id: str, order: Mapping[str, Any]) -> None:
        self.cancel_order(exchange_id)


class AsyncGuardedAdapter(_AsyncGuarded):
    """The adapter protocol with a coroutine `submit_order`."""

    _KEYS = _ADAPTER_KEYS

    async def submit_order(
        self,
        symbol: str,
        side: str,
        quantity: float,
        price: float,
        leverage: float | None = None,
        **over: Any,
    ) -> dict[str, Any]:
        order = self._guard.order(symbol, side, quantity, price, leverage=leverage, **over)
        sent = self._guard.decided(order, await self._guard.sup.evaluate_async(order))
        loop = self._loop = asyncio.get_running_loop()
        try:
            response = await self._client.submit_order(
                *_adapter_args(order, symbol, sent, leverage), **_adapter_flags(order)
            )
        except Exception as exc:
            await loop.run_in_executor(None, self._guard.failed, order, exc)
            raise
        await loop.run_in_executor(None, self._report, order, response)
        return dict(response)

    async def cancel_order(self, order_id: str) -> Any:
        loop = asyncio.get_running_loop()
        try:
            response = await self._client.cancel_order(order_id)
        except Exception as exc:
            await loop.run_in_executor(None, self._journal_cancel, "cancel_order", order_id, exc)
            raise
        await loop.run_in_executor(None, self._journal_cancel, "cancel_order", order_id, None)
        await loop.run_in_executor(None, self._cancelled, order_id, response)
        return response

    async def _cancel_one_async(self, exchange_id: str, order: Mapping[str, Any]) -> None:
        await self.cancel_order(exchange_id)
