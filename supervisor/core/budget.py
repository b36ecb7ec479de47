"""The caps' budgets leased from the shared store (docs/scale-out.md): pure arithmetic.

With several instances on one database, each exchange-wide cap and each
account cap is shared: every instance holds a lease, a slice of the cap it may
spend, granted when the cap's positions were `base_units`. What it has spent of
the slice is what its own orders hold in flight plus whatever the positions grew
since the grant (a fill turns in-flight notional into position: still spent).
Positions that shrank give nothing back here: the next grant, made against the
positions then, does. So, over every instance, positions plus everything in
flight never exceed the cap: each grant fits the cap beside the positions and
every other live lease, and no instance spends beyond its own.

No lease, or one past its `valid_until`: nothing to spend (BUDGET_UNAVAILABLE).
"""

from __future__ import annotations

from supervisor.config import Config
from supervisor.core.messages import LeaseHeld

__all__ = ["REDUCE", "CapKey", "cap_keys", "cap_name", "qty_units", "reduce_key", "reduction_room", "room_units"]

CapKey = tuple[str, str]  # ("exchange", name), ("account", name) or (REDUCE, "account/symbol/exchange")

#: A position's reduction budget (several instances): what of |position| (in micro-units of
#: quantity) this instance may close. Leased like a cap, so that orders closing one position
#: through several instances at once never close more than it holds (and flip it beyond a cap).
REDUCE = "reduce"
QTY_UNITS = 1_000_000


def cap_keys(config: Config) -> dict[CapKey, float]:
    """Every cap the config sets, in USD: exchange-wide and per account."""
    caps: dict[CapKey, float] = {}
    for name, ex in sorted(config.exchanges.items()):
        if ex.max_notional_usd is not None:
            caps[("exchange", name)] = ex.max_notional_usd
    for name, acct in sorted(config.accounts.accounts.items()):
        if acct.max_notional_usd is not None:
            caps[("account", name)] = acct.max_notional_usd
    return caps


def cap_name(key: CapKey) -> str:
    """The cap's name in the database and on every surface: "exchange:binance", "account:a1"."""
    return f"{key[0]}:{key[1]}"


def room_units(lease: LeaseHeld | None, positions_units: int, reserved_units: int, now: float) -> int:
    """What is left of the lease to spend now (micro-USD, never below 0)."""
    if lease is None or not now < lease.valid_until:
        return 0
    grown = positions_units - lease.base_units
    return max(0, lease.units - reserved_units - (grown if grown > 0 else 0))


def reduce_key(account: str, symbol: str, exchange: str) -> CapKey:
    return (REDUCE, f"{account}/{symbol}/{exchange}")


def qty_units(quantity: float) -> int:
    """A quantity as integer micro-units, rounded as the lease's cap is (one rounding on both
    sides: 1.001 is 1,001,000 units wherever it is counted)."""
    return round(quantity * QTY_UNITS)


def reduction_room(lease: LeaseHeld | None, position_qty: float, in_flight_qty: float, now: float) -> float:
    """What of a position this instance may still close (quantity): its reduction lease, less
    what it closes in flight and what the position shrank since the grant (closed already).
    No lease, or one past its `valid_until`: nothing (the order counts as opening)."""
    if lease is None or not now < lease.valid_until:
        return 0.0
    shrunk = lease.base_units - qty_units(abs(position_qty))
    return max(0.0, (lease.units - (shrunk if shrunk > 0 else 0)) / QTY_UNITS - in_flight_qty)
