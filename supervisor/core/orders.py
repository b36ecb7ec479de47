"""Order validation (check 0): anything the caller hands us becomes either a
clean `OrderRequest` or an `INVALID_ORDER` denial. Never raises.

The order is read once (a mapping that changes between reads is judged on the
one copy taken), every value is normalised to its plain built-in type and true
value (`supervisor.core.values`), and the clean order is what travels on: the gate
judges it and the guarded clients send it, so nothing judged differs from
what reaches the exchange. Text is bounded and what is echoed into a reason is
cut short.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from typing import Any

from supervisor.config import Config
from supervisor.core.messages import OrderRequest
from supervisor.core.values import plain_float, plain_str, shorten, slot_setters

__all__ = ["MAX_NAME_LENGTH", "ORDER_FIELDS", "account_of", "config_symbol", "order_id_of", "validate_order"]

ORDER_FIELDS = frozenset(OrderRequest.__dataclass_fields__)
_REQUIRED = ("account", "exchange", "strategy_id", "symbol", "side", "quantity", "price")
_NAMES = ("account", "exchange", "strategy_id", "symbol")
#: Longest account, exchange, strategy, symbol or order id accepted.
MAX_NAME_LENGTH = 128
_ids = itertools.count(1)
_ID_PREFIX = f"rg-{os.getpid():x}-"


def config_symbol(symbol: str) -> str:
    """An exchange-unified symbol in riskgate's terms: "BTC/USDT" and
    "BTC/USDT:USDT" -> "BTCUSDT" (spot and the linear perpetual share a key).
    Anything not of exactly that form (another settle currency, an expiry, a
    second slash, an empty or non-alphanumeric part) comes back as given: no
    configured symbol has a "/" or ":", so it is not one (INVALID_ORDER)."""
    base, slash, rest = symbol.partition("/")
    if not slash:
        return symbol
    quote, colon, settle = rest.partition(":")
    if not (_asset(base) and _asset(quote)) or (colon and settle != quote):
        return symbol
    return base + quote


def _asset(name: str) -> bool:
    return name.isascii() and name.isalnum()


def _new_order_id() -> str:
    return f"{_ID_PREFIX}{next(_ids)}"


def _read(raw: Any, key: str) -> str | None:
    try:
        value = raw.get(key) if isinstance(raw, Mapping) else getattr(raw, key, None)
    except Exception:  # noqa: BLE001 - a hostile mapping must not break the gate
        return None
    text = plain_str(value)
    return text if text and len(text) <= MAX_NAME_LENGTH and _clean(text) else None


def _clean(text: str) -> bool:
    """Printable, without surrounding whitespace: no control characters, no lone
    surrogates (not UTF-8), nothing that reads like another name (`"x "`)."""
    return text.isprintable() and text == text.strip()


def order_id_of(raw: Any) -> str:
    """The client id of whatever was given (if usable), or a fresh one. Never raises."""
    return _read(raw, "order_id") or _new_order_id()


def account_of(raw: Any) -> str | None:
    """The account named by whatever was given, if it is a usable name. Never raises."""
    return _read(raw, "account")


def _fields(raw: Any) -> dict[Any, Any] | str:
    if isinstance(raw, OrderRequest):
        return {name: getattr(raw, name) for name in ORDER_FIELDS}
    if isinstance(raw, Mapping):
        return dict(raw)
    return f"order must be an OrderRequest or a mapping, got {type(raw).__name__}"


def _positive(fields: dict[Any, Any], key: str) -> float | str:
    value = plain_float(fields[key])
    if value is None or value <= 0:
        return f"{key} must be a finite number > 0, got {shorten(fields[key])}"
    return value


_new = object.__new__
_FIELD_ORDER = (
    "account", "exchange", "strategy_id", "symbol", "side", "quantity", "price", "leverage", "reduce_only",
    "stop_price", "order_id", "reference_price",
)  # fmt: skip
(
    _o_account, _o_exchange, _o_strategy, _o_symbol, _o_side, _o_quantity, _o_price, _o_leverage, _o_reduce,
    _o_stop, _o_id, _o_reference,
) = slot_setters(OrderRequest, *_FIELD_ORDER)  # fmt: skip
_BIG = 1e300  # a plain int up to this converts to a float exactly enough, and never overflows


def _name_ok(text: str) -> bool:
    return 0 < len(text) <= MAX_NAME_LENGTH and text.isprintable() and text == text.strip()


def _number(value: object) -> float:
    """A plain float or int that is finite and > 0, as a float; else 0.0 (not the fast path's)."""
    kind = type(value)
    if kind is float:
        return value if 0.0 < value < math.inf else 0.0  # type: ignore[return-value,operator]
    if kind is int:
        return float(value) if 0 < value < _BIG else 0.0  # type: ignore[arg-type,operator]
    return 0.0


def _plain_order(raw: dict[Any, Any], config: Config) -> OrderRequest | None:
    """The common case, quickly: a plain dict of plain values that is a valid order.
    Anything else, including anything invalid, is None: the full reading decides,
    and names the problem. Where this returns an order, the full reading returns
    the same one (tests/supervisor/core/test_orders_fast.py)."""
    if len(raw) > len(_FIELD_ORDER):
        return None
    for key in raw:  # each key's exact type before it is compared: no key's own __eq__ ever runs
        if type(key) is not str or key not in ORDER_FIELDS:
            return None
    get = raw.get
    account, exchange, strategy, symbol, side = (
        get("account"), get("exchange"), get("strategy_id"), get("symbol"), get("side"),
    )  # fmt: skip
    if not (
        type(account) is str
        and type(exchange) is str
        and type(strategy) is str
        and type(symbol) is str
        and type(side) is str  # before comparing: only a plain str's == is ours
        and (side == "buy" or side == "sell")
    ):
        return None
    if not (_name_ok(account) and _name_ok(exchange) and _name_ok(strategy) and _name_ok(symbol)):
        return None
    if not strategy.isascii():
        return None
    quantity, price = _number(get("quantity")), _number(get("price"))
    if not (quantity and price):
        return None
    raw_leverage = get("leverage")
    leverage = 1.0 if raw_leverage is None else _number(raw_leverage)
    if leverage < 1.0:
        return None
    reduce_only = get("reduce_only")
    if reduce_only is None:
        reduce_only = False
    elif type(reduce_only) is not bool:
        return None
    stop = get("stop_price")
    stop_price = None
    if stop is not None:
        stop_price = _number(stop)
        if not stop_price or ((stop_price >= price) if side == "buy" else (stop_price <= price)):
            return None
    order_id = get("order_id")
    if order_id is not None and not (type(order_id) is str and _name_ok(order_id)):
        return None
    ref = get("reference_price")
    reference = None
    if ref is not None:
        reference = _number(ref)
        if not reference:
            return None
    sym = config.symbols.get(symbol)
    if sym is None:
        return None
    notional = quantity * price
    if notional > config.accounts.max_plausible_usd or quantity < sym.min_qty or notional < sym.min_notional:
        return None
    o: OrderRequest = _new(OrderRequest)
    _o_account(o, account)
    _o_exchange(o, exchange)
    _o_strategy(o, strategy)
    _o_symbol(o, symbol)
    _o_side(o, side)
    _o_quantity(o, quantity)
    _o_price(o, price)
    _o_leverage(o, leverage)
    _o_reduce(o, reduce_only)
    _o_stop(o, stop_price)
    _o_id(o, order_id or _new_order_id())
    _o_reference(o, reference)
    return o


def validate_order(raw: Any, config: Config) -> OrderRequest | str:
    """Return a normalised `OrderRequest`, or the text of why it is invalid."""
    if type(raw) is dict:
        try:
            fast = _plain_order(raw, config)
        except Exception:  # noqa: BLE001 - never here, but a crash is not an answer: the full reading decides
            fast = None
        if fast is not None:
            return fast
    return _read_order(raw, config)


def _read_order(raw: Any, config: Config) -> OrderRequest | str:
    """The full reading of anything given as an order (`validate_order`)."""
    try:
        fields = _fields(raw)
        if isinstance(fields, str):
            return fields
        unknown = [k for k in fields if k not in ORDER_FIELDS]
        if unknown:
            shown = ", ".join(shorten(k, 30) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            return f"unknown field(s): {shown}"
        missing = [k for k in _REQUIRED if fields.get(k) is None]
        if missing:
            return f"missing field(s): {', '.join(missing)}"
        names: dict[str, str] = {}
        for key in _NAMES:
            text = plain_str(fields[key])
            if not text:
                return f"{key} must be a non-empty string, got {shorten(fields[key])}"
            if len(text) > MAX_NAME_LENGTH:
                return f"{key} longer than {MAX_NAME_LENGTH} characters: {shorten(text, 30)}"
            if not _clean(text):
                return f"{key} must be printable text without surrounding spaces, got {shorten(text, 30)}"
            names[key] = text
        if not names["strategy_id"].isascii():
            # Strategy lists are matched by name: a look-alike letter must not slip past a blacklist.
            return f"strategy_id must be ASCII, got {shorten(names['strategy_id'], 30)}"
        side = plain_str(fields["side"])
        side = side.lower() if side is not None else None
        if side not in ("buy", "sell"):
            return f"side must be buy or sell, got {shorten(fields['side'])}"
        quantity = _positive(fields, "quantity")
        if isinstance(quantity, str):
            return quantity
        price = _positive(fields, "price")
        if isinstance(price, str):
            return price
        raw_leverage = fields.get("leverage")
        leverage = 1.0 if raw_leverage is None else plain_float(raw_leverage)
        if leverage is None or leverage < 1:
            return f"leverage must be a finite number >= 1, got {shorten(raw_leverage)}"
        reduce_only = fields.get("reduce_only")
        if reduce_only is None:
            reduce_only = False
        if type(reduce_only) is not bool:
            return f"reduce_only must be true or false, got {shorten(reduce_only)}"
        stop_price = fields.get("stop_price")
        if stop_price is not None:
            stop_price = _positive(fields, "stop_price")
            if isinstance(stop_price, str):
                return stop_price
            if (stop_price >= price) if side == "buy" else (stop_price <= price):
                where = "below" if side == "buy" else "above"
                return f"stop_price {stop_price} must be {where} price {price} for a {side}: the risk is measured to it"
        order_id = fields.get("order_id")
        if order_id is not None:
            order_id = plain_str(order_id)
            if not order_id or len(order_id) > MAX_NAME_LENGTH or not _clean(order_id):
                return f"order_id must be printable text of 1 to {MAX_NAME_LENGTH} characters"
        reference = fields.get("reference_price")
        if reference is not None:
            reference = _positive(fields, "reference_price")
            if isinstance(reference, str):
                return reference
        symbol = config.symbols.get(names["symbol"])
        if symbol is None:
            names["symbol"] = config_symbol(names["symbol"])  # "BTC/USDT", "BTC/USDT:USDT"
            symbol = config.symbols.get(names["symbol"])
        if symbol is None:
            return f"symbol {shorten(fields['symbol'], 30)} is not configured (no lot size known)"
        notional = quantity * price
        if notional > config.accounts.max_plausible_usd:
            return f"notional {notional:.6g} above max_plausible_usd {config.accounts.max_plausible_usd:.6g}"
        if quantity < symbol.min_qty:
            return f"quantity {quantity} below the symbol's min_qty {symbol.min_qty}"
        if notional < symbol.min_notional:
            return f"notional {notional:.8g} below the symbol's min_notional {symbol.min_notional}"
        return OrderRequest(
            account=names["account"],
            exchange=names["exchange"],
            strategy_id=names["strategy_id"],
            symbol=names["symbol"],
            side=side,
            quantity=quantity,
            price=price,
            leverage=leverage,
            reduce_only=reduce_only,
            stop_price=stop_price,
            order_id=order_id or _new_order_id(),
            reference_price=reference,
        )
    except Exception as exc:  # noqa: BLE001 - malformed input is an answer, not a crash
        return f"order could not be read: {type(exc).__name__}"
