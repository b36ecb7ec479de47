"""Shared test helpers: a small, explicit configuration and state builders."""

from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actors.gate import GateActor
from supervisor.clock import FakeClock
from supervisor.config import Config, parse_config
from supervisor.core.evaluate import evaluate_order
from supervisor.core.gate_state import GateState
from supervisor.core.messages import (
    AccountState,
    EssSourceStatus,
    EssState,
    OrderRequest,
    Position,
    RiskGateResult,
    RiskSignal,
)

BASE: dict[str, Any] = {
    "gate": {
        "evaluate_timeout_s": 2.0,
        "max_orders_per_s": 5,
        "warning_scale_factor": 0.5,
        "reduce_only_when_critical": False,
        "reservation_ttl_s": 30.0,
        # The older tests reuse ids and repeat one order on purpose: replay and repeat
        # protection are off here and tested on their own (tests/supervisor/core/test_pretrade.py).
        "duplicate_window_s": 0.0,
        "max_repeats": 1000,
    },
    "risk_v3": {
        "url": "http://127.0.0.1:1",
        "poll_interval_s": 2.0,
        "timeout_s": 1.0,
        "max_age_s": 10.0,
        "max_signal_age_s": 900.0,
    },
    "ess": {
        "kill_switch_file": "/nonexistent/riskgate-test/KILL",
        "poll_interval_s": 0.5,
        "timeout_s": 0.5,
        "max_age_s": 3.0,
    },
    "accounts": {
        "max_age_s": 60.0,
        "main": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 50_000.0},
        "tiny": {"exchange": "binance", "capital_profile": "micro"},
        "bold": {"exchange": "bybit", "capital_profile": "aggressive"},
    },
    "exchanges": {"binance": {"max_notional_usd": 200_000.0}, "bybit": {}},
    "profiles": {
        "micro": {
            "max_daily_loss_pct": -0.5,
            "max_weekly_loss_pct": -2.0,
            "max_single_trade_risk_pct": 0.2,
            "max_open_positions": 2,
            "allowed_leverage": 1.0,
            "whitelist": ["trend_v2"],
        },
        "low": {
            "max_daily_loss_pct": -1.0,
            "max_weekly_loss_pct": -3.5,
            "max_single_trade_risk_pct": 0.5,
            "max_open_positions": 3,
            "allowed_leverage": 2.0,
        },
        "normal": {
            "max_daily_loss_pct": -2.0,
            "max_weekly_loss_pct": -7.0,
            "max_single_trade_risk_pct": 1.0,
            "max_open_positions": 5,
            "allowed_leverage": 3.0,
            "max_order_notional_usd": 1_000_000.0,
            "blacklist": ["martingale"],
        },
        "aggressive": {
            "max_daily_loss_pct": -3.5,
            "max_weekly_loss_pct": -12.0,
            "max_single_trade_risk_pct": 2.0,
            "max_open_positions": 8,
            "allowed_leverage": 5.0,
        },
    },
    "strategies": {"global_blacklist": ["experimental_hft"]},
    "symbols": {
        "BTCUSDT": {"lot_step": 0.001, "min_qty": 0.001, "min_notional": 5.0},
        "ETHUSDT": {"lot_step": 0.01, "min_qty": 0.01, "min_notional": 5.0, "max_qty": 100.0},
        "SOLUSDT": {"lot_step": 0.1, "min_qty": 0.1, "min_notional": 5.0},
    },
}


#: The journal writer of every config built here that names none. None: the production default (a
#: child process), as the benchmarks and the drivers tests run as subprocesses get it. The test suite
#: sets "thread" (tests/conftest.py): the same JournalWriter, without an interpreter started for every
#: supervisor a test starts (18 s of the suite); the process writer keeps its own tests
#: (tests/supervisor/ops/test_journal_writer_process.py, test_journal_crash.py's driver).
JOURNAL_WRITER: str | None = None


def config_dict(**sections: dict[str, Any]) -> dict[str, Any]:
    """BASE with sections merged in one level deep (`gate={"max_orders_per_s": 2}`)."""
    data = copy.deepcopy(BASE)
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    if JOURNAL_WRITER is not None:
        data.setdefault("journal", {}).setdefault("writer", JOURNAL_WRITER)
    return data


def make_config(**sections: dict[str, Any]) -> Config:
    return parse_config(config_dict(**sections))


def order(**fields: Any) -> dict[str, Any]:
    """A valid order for account `main`: 1 SOL at 100 USD (1% of 10,000 equity)."""
    base = {
        "account": "main",
        "exchange": "binance",
        "strategy_id": "trend_v2",
        "symbol": "SOLUSDT",
        "side": "buy",
        "quantity": 1.0,
        "price": 100.0,
        "leverage": 1.0,
    }
    base.update(fields)
    return base


def signal(level: str = "INFO", when: datetime | None = None, **fields: Any) -> RiskSignal:
    return RiskSignal(risk_level=level, timestamp=when or FakeClock().now(), **fields)  # type: ignore[arg-type]


def ess(active: bool | None) -> EssState:
    return EssState.combine((EssSourceStatus("test", active, "test source"),))


def account_state(
    name: str = "main",
    equity: float = 10_000.0,
    positions: tuple[Position, ...] = (),
    day_start: float | None = None,
    week_start: float | None = None,
) -> AccountState:
    return AccountState(
        account=name,
        equity=equity,
        positions=positions,
        day_start_equity=equity if day_start is None else day_start,
        week_start_equity=equity if week_start is None else week_start,
    )


def fresh_state(clock: FakeClock, *accounts: AccountState, level: str = "INFO", **signal_fields: Any) -> GateState:
    """Gate state where every source has just reported: orders can be allowed."""
    st = GateState()
    now = clock.monotonic()
    st.ess, st.ess_received = ess(False), now
    st.signal, st.signal_received = signal(level, clock.now(), **signal_fields), now
    for a in accounts or (account_state(),):
        st.put_account(a, now)
    return st


def decide(raw: Any, st: GateState, cfg: Config, clock: FakeClock) -> RiskGateResult:
    return evaluate_order(raw, st, cfg, clock.monotonic(), clock.now()).result


__all__ = [
    "BASE",
    "GateCrash",
    "GateHold",
    "HoldableGateActor",
    "OrderRequest",
    "Position",
    "account_state",
    "config_dict",
    "decide",
    "ess",
    "feed",
    "fresh_state",
    "make_config",
    "order",
    "signal",
]


@dataclass(frozen=True, slots=True)
class GateHold:
    """A test barrier: the gate's actor signals `held`, then waits for `release`
    (at most `timeout_s`) holding the gate's lock (the gate busy deciding:
    callers wait for it, asyncio callers and posted state queue behind it), or,
    with `lock=False`, only its own thread (the actor stuck, the gate free)."""

    held: threading.Event
    release: threading.Event
    timeout_s: float = 10.0
    lock: bool = True


@dataclass(frozen=True, slots=True)
class GateCrash:
    """A test message the gate's actor dies of (an exception out of its handler)."""


class HoldableGateActor(GateActor):
    """The production gate actor plus `GateHold` and `GateCrash` (installed for every test by conftest)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handlers[GateHold] = self._on_hold
        self._handlers[GateCrash] = self._on_crash

    def _on_crash(self, crash: GateCrash) -> None:
        raise RuntimeError("crashed on purpose by a test")

    def _on_hold(self, hold: GateHold) -> None:
        with self._gate.lock if hold.lock else contextlib.nullcontext():
            hold.held.set()
            hold.release.wait(hold.timeout_s)


def feed(sup: Any, equity: float = 10_000.0) -> None:
    """Every source fresh: ESS clear, Risk v3 INFO, a snapshot of `equity` for each configured account."""
    from supervisor.core.messages import AccountSnapshot

    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, equity))
