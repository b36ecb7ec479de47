"""The gate's inputs as journal rows, and back: what `riskgate replay` and the shadow re-decide from.

Each `InputRecord` (channels.journal_queue) becomes one row of the `inputs` table: its kind
and its message as a JSON list of plain values, positional, written by `encode` on the
journal's thread (never the gate's). `decode` builds the same frozen message again, so a
replayed gate applies exactly what the live one applied. A row `decode` cannot read raises
`ValueError`: the replay stops there and says so (a journal it cannot trust is not guessed at).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from supervisor.channels.ess_board import EssReading
from supervisor.channels.journal_queue import LeasesMeanwhile, RecordsLost, Seeded
from supervisor.core.messages import (
    AccountState,
    ConfigChanged,
    DecidedElsewhere,
    EssSourceStatus,
    EssState,
    Fill,
    LeaseHeld,
    MessageSent,
    OrderOutcome,
    Override,
    Position,
    PriceSnapshot,
    ReduceOnlyMode,
    RiskSignal,
    SharedState,
)

__all__ = ["INPUT_KINDS", "ConfigMark", "decode", "encode", "route"]


class ConfigMark:
    """A reload the live gate took (its config's digest): a replay keeps its candidate."""

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest


def _t(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _w(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _ess_state(s: EssState) -> list[Any]:
    return [s.active, [[r.source, r.active, r.detail] for r in s.sources], s.reason]


def _ess_of(v: list[Any]) -> EssState:
    return EssState(v[0], tuple(EssSourceStatus(a, b, c) for a, b, c in v[1]), v[2])


def _leases(leases: Any) -> list[Any]:
    return [[k[0], k[1], h.units, h.base_units, h.valid_until] for k, h in leases.items()]


def _leases_of(v: list[Any]) -> dict[tuple[str, str], LeaseHeld]:
    return {(k, n): LeaseHeld(u, b, t) for k, n, u, b, t in v}


_ENCODERS: dict[type, tuple[str, Callable[[Any], list[Any]]]] = {
    RiskSignal: ("signal", lambda m: [m.risk_level, _t(m.timestamp), m.ess_action_required,
                                      m.ess_tier_recommendation, m.overall_risk_score,
                                      list(m.critical_issues), list(m.warnings)]),
    PriceSnapshot: ("prices", lambda m: [_t(m.timestamp), dict(m.prices), list(m.dropped),
                                         {k: _t(v) for k, v in m.stamps.items()} if m.stamps is not None else None]),
    AccountState: ("account", lambda m: [m.account, m.equity,
                                         [[p.symbol, p.exchange, p.quantity, p.mark_price] for p in m.positions],
                                         m.day_start_equity, m.week_start_equity, m.refreshed,
                                         list(m.baseline_unknown), m.problem, m.peak_equity, _t(m.cooldown_until),
                                         [[p, _t(w)] for p, w in m.trips]]),
    EssState: ("ess", _ess_state),
    EssReading: ("ess_board", lambda m: _ess_state(m.state)),
    Override: ("override", lambda m: [m.account, m.approved_by, m.reason, m.ttl_s, m.override_id]),
    Fill: ("fill", lambda m: [m.account, m.exchange, m.symbol, m.side, m.quantity, m.price, m.order_id]),
    OrderOutcome: ("outcome", lambda m: [m.order_id, m.status, m.filled_quantity, m.account]),
    MessageSent: ("message_sent", lambda m: [m.account]),
    DecidedElsewhere: ("decided_elsewhere", lambda m: [list(map(list, m.orders))]),
    ReduceOnlyMode: ("reduce_only", lambda m: [m.reason]),
    SharedState: ("shared", lambda m: [m.confirmed_at, _leases(m.leases)]),
    LeasesMeanwhile: ("leases", lambda m: [_leases(m.leases)]),
    ConfigChanged: ("config", lambda m: [m.config.digest]),
    Seeded: ("seed", lambda m: [m.mono, _t(m.wall)]),
    RecordsLost: ("lost", lambda m: [m.records]),
}  # fmt: skip

_DECODERS: dict[str, Callable[[list[Any], float], object]] = {
    "signal": lambda v, _r: RiskSignal(v[0], _w(v[1]), v[2], v[3], v[4], tuple(v[5]), tuple(v[6])),  # type: ignore[arg-type]
    "prices": lambda v, _r: PriceSnapshot(_w(v[0]), v[1], tuple(v[2]),  # type: ignore[arg-type]
                                          {k: _w(t) for k, t in v[3].items()} if v[3] is not None else None),  # type: ignore[misc]
    "account": lambda v, _r: AccountState(v[0], v[1], tuple(Position(*p) for p in v[2]), v[3], v[4], v[5],
                                          tuple(v[6]), v[7], v[8], _w(v[9]),
                                          tuple((p, _w(w)) for p, w in v[10])),  # type: ignore[misc]
    "ess": lambda v, _r: _ess_of(v),
    "ess_board": lambda v, r: EssReading(_ess_of(v), r),
    "override": lambda v, _r: Override(*v),
    "fill": lambda v, _r: Fill(*v),
    "outcome": lambda v, _r: OrderOutcome(*v),
    "message_sent": lambda v, _r: MessageSent(*v),
    "decided_elsewhere": lambda v, _r: DecidedElsewhere(tuple((a, o) for a, o in v[0])),
    "reduce_only": lambda v, _r: ReduceOnlyMode(v[0]),
    "shared": lambda v, _r: SharedState(v[0], _leases_of(v[1])),
    "leases": lambda v, _r: LeasesMeanwhile(_leases_of(v[0])),
    "config": lambda v, _r: ConfigMark(str(v[0])),
    "seed": lambda v, _r: Seeded(float(v[0]), _w(v[1])),  # type: ignore[arg-type]
    "lost": lambda v, _r: RecordsLost(int(v[0])),
}  # fmt: skip

INPUT_KINDS = frozenset(_DECODERS)


def encode(message: object) -> tuple[str, str]:
    """(kind, body) of an input the gate applied; `TypeError` for a kind it never records."""
    found = _ENCODERS.get(type(message))
    if found is None:
        raise TypeError(f"not a gate input: {type(message).__name__}")
    kind, values = found
    return kind, json.dumps(values(message), separators=(",", ":"))


def route(message: object) -> tuple[str | None, str | None]:
    """(account, exchange) an input concerns, where it concerns one: a replay split by exchange
    reads only its accounts' and exchanges' (every other input is read by every part). An
    account's own state is read by all: its positions may lie on any exchange."""
    kind = type(message)
    if kind is Fill:
        return message.account, message.exchange  # type: ignore[attr-defined]
    if kind is OrderOutcome or kind is MessageSent or kind is Override:
        return message.account, None  # type: ignore[attr-defined]
    return None, None


def decode(kind: str, body: str, received: float) -> object:
    """The message `encode` wrote; `ValueError` when the row cannot be read as one."""
    build = _DECODERS.get(kind)
    if build is None:
        raise ValueError(f"unknown input kind {kind!r}")
    try:
        return build(json.loads(body), received)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise ValueError(f"input {kind!r} cannot be read: {type(exc).__name__}: {exc}") from exc
