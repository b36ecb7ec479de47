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
from collections.abc import Callable, Mapping
from typing import Any

from supervisor.config import Config
from supervisor.core.messages import OrderRequest
from supervisor.core.values import plain_float, plain_str, shorten, slot_setters

__all__ = ["MAX_NAME_LENGTH", "ORDER_FIELDS", "account_of", "config_symbol", "order_id_of", "validate_order"]

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
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - a hostile mapping must not break the gate
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


_INF = math.inf
_BIG = 1e300  # a plain int below this converts to a float exactly enough, and never overflows


class _InvalidError(Exception):
    """Why a field, or the whole order, is invalid (raised only for invalid input)."""


# -- one reader per kind of field: the value as its plain type, or _InvalidError ---------------------
def _name(value: object, key: str) -> str:
    text = value if type(value) is str else plain_str(value)
    if text and len(text) <= MAX_NAME_LENGTH and text.isprintable() and text == text.strip():
        return text  # the common case, in one test
    if not text:
        raise _InvalidError(f"{key} must be a non-empty string, got {shorten(value)}")
    if len(text) > MAX_NAME_LENGTH:
        raise _InvalidError(f"{key} longer than {MAX_NAME_LENGTH} characters: {shorten(text, 30)}")
    raise _InvalidError(f"{key} must be printable text without surrounding spaces, got {shorten(text, 30)}")


def _ascii_name(value: object, key: str) -> str:
    text = _name(value, key)
    if not text.isascii():
        # Strategy lists are matched by name: a look-alike letter must not slip past a blacklist.
        raise _InvalidError(f"{key} must be ASCII, got {shorten(text, 30)}")
    return text


def _side(value: object, key: str) -> str:
    if type(value) is str and (value == "buy" or value == "sell"):  # before comparing: only a plain str's == is ours
        return value
    text = plain_str(value)
    side = text.lower() if text is not None else None
    if side not in ("buy", "sell"):
        raise _InvalidError(f"{key} must be buy or sell, got {shorten(value)}")
    return side


def _positive(value: object, key: str) -> float:
    kind = type(value)
    if kind is float and 0.0 < value < _INF:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    if kind is int and 0 < value < _BIG:  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    number = plain_float(value)
    if number is None or number <= 0:
        raise _InvalidError(f"{key} must be a finite number > 0, got {shorten(value)}")
    return number


def _leverage(value: object, key: str) -> float:
    number = plain_float(value)
    if number is None or number < 1:
        raise _InvalidError(f"{key} must be a finite number >= 1, got {shorten(value)}")
    return number


def _flag(value: object, key: str) -> bool:
    if type(value) is not bool:
        raise _InvalidError(f"{key} must be true or false, got {shorten(value)}")
    return value


def _order_id(value: object, key: str) -> str:
    text = value if type(value) is str else plain_str(value)
    if text and len(text) <= MAX_NAME_LENGTH and text.isprintable() and text == text.strip():
        return text
    raise _InvalidError(f"{key} must be printable text of 1 to {MAX_NAME_LENGTH} characters")


_REQUIRED_FIELD = object()  # a field's default when it must be given

#: The order, field by field: its name, its reader, and its value when absent (or
#: `_REQUIRED_FIELD`). The only description of an order's fields: `validate_order`
#: reads every order through it, in this order (the first problem found is the one
#: named), then checks the order as a whole (`_check_whole`).
ORDER_TABLE: tuple[tuple[str, Callable[[object, str], Any], object], ...] = (
    ("account", _name, _REQUIRED_FIELD),
    ("exchange", _name, _REQUIRED_FIELD),
    ("strategy_id", _ascii_name, _REQUIRED_FIELD),
    ("symbol", _name, _REQUIRED_FIELD),
    ("side", _side, _REQUIRED_FIELD),
    ("quantity", _positive, _REQUIRED_FIELD),
    ("price", _positive, _REQUIRED_FIELD),
    ("leverage", _leverage, 1.0),
    ("reduce_only", _flag, False),
    ("stop_price", _positive, None),
    ("order_id", _order_id, None),
    ("reference_price", _positive, None),
)
_NAMES_IN_ORDER = tuple(name for name, _, _ in ORDER_TABLE)
ORDER_FIELDS = frozenset(_NAMES_IN_ORDER)
_REQUIRED = tuple(name for name, _, default in ORDER_TABLE if default is _REQUIRED_FIELD)
# What the reader walks: each field with its reader, its default and its slot's setter.
_PLAN = tuple(
    (name, read, default, put)
    for (name, read, default), put in zip(ORDER_TABLE, slot_setters(OrderRequest, *_NAMES_IN_ORDER), strict=True)
)
_SET_SYMBOL, _SET_ID = slot_setters(OrderRequest, "symbol", "order_id")
_BUILD = OrderRequest.__new__


def _fields(raw: Any) -> Mapping[str, Any]:
    """The order's fields, each read once from here on. Keys must be plain `str`s
    of known fields: no key's own `__eq__` or `__hash__` is ever asked."""
    if type(raw) is dict:
        fields: Mapping[Any, Any] = raw  # a plain dict's get() runs no caller code
    elif type(raw) is OrderRequest:  # exactly: isinstance() believes a `__class__`, a subclass has its own code
        return {name: getattr(raw, name) for name in _NAMES_IN_ORDER}
    elif issubclass(type(raw), Mapping):  # its type, not its claimed `__class__`
        fields = dict(raw)  # one copy: a mapping that changes between reads is judged on this one
    else:
        raise _InvalidError(f"order must be an OrderRequest or a mapping, got {type(raw).__name__}")
    for key in fields:
        if type(key) is not str or key not in ORDER_FIELDS:
            unknown = [k for k in fields if type(k) is not str or k not in ORDER_FIELDS]
            shown = ", ".join(shorten(k, 30) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise _InvalidError(f"unknown field(s): {shown}")
    return fields


def validate_order(raw: Any, config: Config) -> OrderRequest | str:
    """A normalised `OrderRequest`, or the text of why `raw` is not a valid order.
    Never raises."""
    try:
        return _read_order(raw, config)
    except _InvalidError as why:
        return str(why)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - malformed input (even a hostile BaseException) is an answer
        return f"order could not be read: {type(exc).__name__}"


def _read_order(raw: Any, config: Config) -> OrderRequest:
    fields = _fields(raw)
    get = fields.get
    order: OrderRequest = _BUILD(OrderRequest)
    try:
        for name, read, default, put in _PLAN:
            value = get(name)  # each field read once
            if value is None:
                if default is _REQUIRED_FIELD:
                    raise _InvalidError(name)
                put(order, default)
            else:
                put(order, read(value, name))
    except _InvalidError:
        missing = [k for k in _REQUIRED if get(k) is None]
        if missing:  # named before any other problem
            raise _InvalidError(f"missing field(s): {', '.join(missing)}") from None
        raise
    _check_whole(order, config, get("symbol"))
    return order


def _check_whole(order: OrderRequest, config: Config, given_symbol: object) -> None:
    """The rules across fields: the stop on the right side of the price, the symbol
    configured (an exchange-unified one made riskgate's), the notional within
    bounds; a fresh order id when none was given."""
    side, quantity, price, stop = order.side, order.quantity, order.price, order.stop_price
    if stop is not None and ((stop >= price) if side == "buy" else (stop <= price)):
        where = "below" if side == "buy" else "above"
        raise _InvalidError(f"stop_price {stop} must be {where} price {price} for a {side}: the risk is measured to it")
    symbol = config.symbols.get(order.symbol)
    if symbol is None:
        _SET_SYMBOL(order, config_symbol(order.symbol))  # "BTC/USDT", "BTC/USDT:USDT"
        symbol = config.symbols.get(order.symbol)
    if symbol is None:
        raise _InvalidError(f"symbol {shorten(given_symbol, 30)} is not configured (no lot size known)")
    notional = quantity * price
    if notional > config.accounts.max_plausible_usd:
        raise _InvalidError(f"notional {notional:.6g} above max_plausible_usd {config.accounts.max_plausible_usd:.6g}")
    if quantity < symbol.min_qty:
        raise _InvalidError(f"quantity {quantity} below the symbol's min_qty {symbol.min_qty}")
    if notional < symbol.min_notional:
        raise _InvalidError(f"notional {notional:.8g} below the symbol's min_notional {symbol.min_notional}")
    if order.order_id is None:
        _SET_ID(order, _new_order_id())
