"""Order validation (check 0): anything the caller hands us becomes either a
clean `OrderRequest` or an `INVALID_ORDER` denial. Never raises."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from typing import Any

from supervisor.config import Config
from supervisor.messages import OrderRequest

__all__ = ["ORDER_FIELDS", "order_id_of", "validate_order"]

ORDER_FIELDS = frozenset(OrderRequest.__dataclass_fields__)
_REQUIRED = ("account", "exchange", "strategy_id", "symbol", "side", "quantity", "price")
_ids = itertools.count(1)
_ID_PREFIX = f"rg-{os.getpid():x}-"


def _new_order_id() -> str:
    return f"{_ID_PREFIX}{next(_ids)}"


def order_id_of(raw: Any) -> str:
    """The client id of whatever was given, or a fresh one. Never raises."""
    try:
        oid = raw.get("order_id") if isinstance(raw, Mapping) else getattr(raw, "order_id", None)
    except Exception:  # noqa: BLE001 - a hostile mapping must not break the gate
        oid = None
    return oid if isinstance(oid, str) and oid else _new_order_id()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def validate_order(raw: Any, config: Config) -> OrderRequest | str:
    """Return a normalised `OrderRequest`, or the text of why it is invalid."""
    try:
        if isinstance(raw, OrderRequest):
            fields = {name: getattr(raw, name) for name in ORDER_FIELDS}
        elif isinstance(raw, Mapping):
            fields = dict(raw)
        else:
            return f"order must be an OrderRequest or a mapping, got {type(raw).__name__}"
        unknown = set(fields) - ORDER_FIELDS
        if unknown:
            return f"unknown field(s): {', '.join(sorted(map(str, unknown)))}"
        missing = [k for k in _REQUIRED if fields.get(k) is None]
        if missing:
            return f"missing field(s): {', '.join(missing)}"
        for key in ("account", "exchange", "strategy_id", "symbol"):
            if not isinstance(fields[key], str) or not fields[key]:
                return f"{key} must be a non-empty string"
        side = fields["side"]
        side = side.lower() if isinstance(side, str) else None
        if side not in ("buy", "sell"):
            return f"side must be buy or sell, got {fields['side']!r}"
        quantity = _number(fields["quantity"])
        if quantity is None or quantity <= 0:
            return f"quantity must be a finite number > 0, got {fields['quantity']!r}"
        price = _number(fields["price"])
        if price is None or price <= 0:
            return f"price must be a finite number > 0, got {fields['price']!r}"
        raw_leverage = fields.get("leverage", 1.0)
        leverage = 1.0 if raw_leverage is None else _number(raw_leverage)
        if leverage is None or leverage < 1:
            return f"leverage must be a finite number >= 1, got {raw_leverage!r}"
        reduce_only = fields.get("reduce_only", False)
        if reduce_only is None:
            reduce_only = False
        if not isinstance(reduce_only, bool):
            return f"reduce_only must be true or false, got {reduce_only!r}"
        stop_price = fields.get("stop_price")
        if stop_price is not None:
            stop_price = _number(stop_price)
            if stop_price is None or stop_price <= 0:
                return f"stop_price must be a finite number > 0, got {fields['stop_price']!r}"
            if stop_price == price:
                return "stop_price equals price: the trade's risk cannot be measured"
        order_id = fields.get("order_id")
        if order_id is not None and (not isinstance(order_id, str) or not order_id):
            return f"order_id must be a non-empty string, got {order_id!r}"
        symbol = config.symbols.get(fields["symbol"])
        if symbol is None:
            return f"symbol {fields['symbol']!r} is not configured (no lot size known)"
        if quantity < symbol.min_qty:
            return f"quantity {quantity} below the symbol's min_qty {symbol.min_qty}"
        if quantity * price < symbol.min_notional:
            return f"notional {quantity * price:.8g} below the symbol's min_notional {symbol.min_notional}"
        return OrderRequest(
            account=fields["account"],
            exchange=fields["exchange"],
            strategy_id=fields["strategy_id"],
            symbol=fields["symbol"],
            side=side,
            quantity=quantity,
            price=price,
            leverage=leverage,
            reduce_only=reduce_only,
            stop_price=stop_price,
            order_id=order_id or _new_order_id(),
        )
    except Exception as exc:  # noqa: BLE001 - malformed input is an answer, not a crash
        return f"order could not be read: {type(exc).__name__}"
