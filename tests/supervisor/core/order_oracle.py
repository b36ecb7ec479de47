"""The order reader as it was before the table (two readers, held equal by tests): an
oracle for tests/supervisor/core/test_order_table.py. Not used by riskgate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supervisor.config import Config
from supervisor.core.messages import OrderRequest
from supervisor.core.orders import MAX_NAME_LENGTH, ORDER_FIELDS, config_symbol
from supervisor.core.values import plain_float, plain_str, shorten

_REQUIRED = ("account", "exchange", "strategy_id", "symbol", "side", "quantity", "price")
_NAMES = ("account", "exchange", "strategy_id", "symbol")


def _clean(text: str) -> bool:
    return text.isprintable() and text == text.strip()


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


def _new_order_id() -> None:
    return None


def read_order(raw: Any, config: Config) -> OrderRequest | str:
    """The full reading, as it was (order_id None when none was given)."""
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
