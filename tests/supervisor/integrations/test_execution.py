"""Guarded clients: the exchange sees exactly what the gate approved, as approved."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from supervisor import (
    AccountSnapshot,
    AsyncGuardedAdapter,
    AsyncGuardedExchange,
    GuardedAdapter,
    GuardedExchange,
    OrderBlocked,
    Position,
    RiskSupervisor,
)
from supervisor.clock import FakeClock
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import make_config, signal


class FakeExchange:
    """An in-process ccxt-style exchange that records every call."""

    def __init__(self, status: str = "closed", fail: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        self.status = status
        self.fail = fail

    def create_order(self, symbol, type, side, amount, price=None, params=None):  # noqa: A002 - ccxt's signature
        self.calls.append((symbol, type, side, amount, price, dict(params or {})))
        if self.fail is not None:
            raise self.fail
        filled = amount if self.status == "closed" else 0.0
        return {
            "id": f"ex-{len(self.calls)}",
            "status": self.status,
            "amount": amount,
            "filled": filled,
            "average": price,
        }

    def fetch_balance(self):
        return {"USDT": {"free": 1.0}}

    def create_limit_buy_order(self, *args):  # a ccxt shortcut that must not be reachable
        raise AssertionError("bypassed the gate")


class FakeAdapter:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def submit_order(self, symbol, side, quantity, price, leverage=None):
        self.calls.append((symbol, side, quantity, price, leverage))
        return {"order_id": f"a-{len(self.calls)}", "filled_qty": quantity, "avg_price": price, "status": "filled"}


class SpySupervisor:
    """The real supervisor; remembers each decision it returned."""

    def __init__(self, sup: RiskSupervisor) -> None:
        self.sup = sup
        self.results: list = []

    def evaluate(self, order, timeout=None):
        r = self.sup.evaluate(order, timeout)
        self.results.append(r)
        return r

    async def evaluate_async(self, order, timeout=None):
        r = await self.sup.evaluate_async(order, timeout)
        self.results.append(r)
        return r

    def __getattr__(self, name):
        return getattr(self.sup, name)


def feed(
    sup: RiskSupervisor, level: str = "INFO", ess: bool = False, equity: float = 1_000_000.0, positions=()
) -> None:
    sup.report_ess_active(ess)
    sup.report_risk_signal(signal(level, sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", equity, tuple(positions)))


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(gate={"max_orders_per_s": 10_000}), clock=clock, poll_upstreams=False) as s:
        yield s


def test_allowed_order_is_sent_as_asked(sup):
    feed(sup)
    ex = FakeExchange()
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    response = guarded.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
    assert ex.calls == [("SOL/USDT", "limit", "buy", 2.0, 100.0, {})] and response["status"] == "closed"


def test_blocked_order_raises_and_never_reaches_the_exchange(sup):
    feed(sup, "CRITICAL")
    ex = FakeExchange()
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    with pytest.raises(OrderBlocked) as info:
        guarded.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
    assert info.value.result.reason_code is RC.GLOBAL_RISK_CRITICAL and ex.calls == []


def test_scaled_order_sends_the_adjusted_quantity(sup):
    feed(sup, "WARNING")
    ex = FakeExchange()
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    guarded.create_order("SOL/USDT", "limit", "buy", 3.0, 100.0)
    assert ex.calls[0][3] == 1.5


def test_market_order_needs_a_reference_price(sup):
    feed(sup)
    ex = FakeExchange()
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    with pytest.raises(OrderBlocked) as info:
        guarded.create_order("SOL/USDT", "market", "buy", 1.0)
    assert info.value.result.reason_code is RC.INVALID_ORDER and ex.calls == []
    assert info.value.result.reason.startswith("reference_price: required")
    guarded.create_order("SOL/USDT", "market", "buy", 1.0, reference_price=100.0)
    assert ex.calls == [("SOL/USDT", "market", "buy", 1.0, None, {})]


def test_per_call_binding_and_reduce_only_from_params(sup):
    feed(sup, positions=[Position("SOLUSDT", "binance", 2.0, 100.0)])
    ex = FakeExchange()
    guarded = GuardedExchange(ex, sup)  # nothing bound: given per call
    guarded.create_order(
        "SOL/USDT",
        "limit",
        "sell",
        2.0,
        100.0,
        {"reduceOnly": True},
        account="main",
        exchange="binance",
        strategy_id="trend_v2",
    )
    with pytest.raises(OrderBlocked) as info:  # a reduce-only that would grow the position
        guarded.create_order(
            "SOL/USDT",
            "limit",
            "buy",
            1.0,
            100.0,
            {"reduceOnly": True},
            account="main",
            exchange="binance",
            strategy_id="trend_v2",
        )
    assert info.value.result.reason_code is RC.INVALID_ORDER and len(ex.calls) == 1


def test_only_order_entry_through_the_gate_and_read_only_calls_pass(sup):
    guarded = GuardedExchange(FakeExchange(), sup, account="main", exchange="binance", strategy_id="trend_v2")
    assert guarded.fetch_balance()["USDT"]["free"] == 1.0
    # ccxt's shortcut goes through the gate (no state yet: blocked), never the client's own shortcut.
    with pytest.raises(OrderBlocked):
        guarded.create_limit_buy_order("SOL/USDT", 1.0, 100.0)
    with pytest.raises(AttributeError, match="not exposed behind the risk gate"):
        guarded.withdraw("USDT", 1.0, "somewhere")
    with pytest.raises(AttributeError):
        guarded._client_direct  # noqa: B018


def test_client_exception_releases_the_reservation_and_reraises(sup):
    feed(sup)
    guarded = GuardedExchange(
        FakeExchange(fail=ConnectionError("exchange down")),
        sup,
        account="main",
        exchange="binance",
        strategy_id="trend_v2",
    )
    with pytest.raises(ConnectionError):
        guarded.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
    assert sup.health()["gate"]["reservations"] == 0


def test_resting_order_keeps_its_reservation_until_its_update_ends_it(sup):
    feed(sup)
    ex = FakeExchange(status="open")
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    response = guarded.create_order("SOL/USDT", "limit", "buy", 300.0, 100.0, stop_price=99.0)  # 30k
    assert response["amount"] == 300.0
    assert sup.health()["gate"]["reservations"] == 1
    guarded.on_order_update({**response, "status": "open", "filled": 100.0, "average": 100.0})
    tracked = sup.actor_ref("account_tracker").proxy().latest().get(timeout=5)  # the partial fill moved it
    assert [(p.symbol, p.quantity) for p in tracked[0].positions] == [("SOLUSDT", 100.0)]
    assert sup.health()["gate"]["reservations"] == 1  # the rest is still working
    guarded.on_order_update({**response, "status": "canceled", "filled": 100.0})
    assert sup.health()["gate"]["reservations"] == 0


def test_fill_through_the_adapter_moves_positions_so_max_open_positions_blocks(sup):
    feed(sup, positions=[Position(f"X{i}USDT", "binance", 1.0, 10.0) for i in range(4)])
    adapter = FakeAdapter()
    guarded = GuardedAdapter(adapter, sup, account="main", exchange="binance", strategy_id="trend_v2")
    response = guarded.submit_order("SOLUSDT", "buy", 5.0, 100.0, leverage=2.0)
    assert response["status"] == "filled" and adapter.calls == [("SOLUSDT", "buy", 5.0, 100.0, 2.0)]
    with pytest.raises(OrderBlocked) as info:
        guarded.submit_order("ETHUSDT", "buy", 0.1, 3000.0)
    assert info.value.result.reason_code is RC.MAX_OPEN_POSITIONS and len(adapter.calls) == 1
    guarded.submit_order("SOLUSDT", "sell", 5.0, 100.0)  # closing stays possible
    guarded.submit_order("ETHUSDT", "buy", 0.1, 3000.0)  # and frees the slot
    assert len(adapter.calls) == 3


def test_async_wrappers(sup):
    feed(sup, "WARNING")

    class AsyncExchange(FakeExchange):
        async def create_order(self, *args, **kwargs):  # type: ignore[override]
            return FakeExchange.create_order(self, *args, **kwargs)

    class AsyncAdapter(FakeAdapter):
        async def submit_order(self, *args, **kwargs):  # type: ignore[override]
            return FakeAdapter.submit_order(self, *args, **kwargs)

    ex, ad = AsyncExchange(), AsyncAdapter()
    g1 = AsyncGuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    g2 = AsyncGuardedAdapter(ad, sup, account="main", exchange="binance", strategy_id="trend_v2")

    async def scenario():
        await g1.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
        await g2.submit_order("SOLUSDT", "buy", 2.0, 100.0)
        sup.report_risk_signal(signal("CRITICAL", sup.clock.now()))
        with pytest.raises(OrderBlocked):
            await g2.submit_order("SOLUSDT", "buy", 2.0, 100.0)

    asyncio.run(scenario())
    assert ex.calls[0][3] == 1.0 and ad.calls == [("SOLUSDT", "buy", 1.0, 100.0, None)]


# -- property ------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("state"),
            st.sampled_from(["INFO", "INFO", "WARNING", "CRITICAL"]),
            st.sampled_from([False, False, False, True]),
            st.sampled_from([2_000.0, 50_000.0, 1_000_000.0]),
        ),
        st.tuples(
            st.just("order"),
            st.sampled_from(["SOL/USDT", "ETH/USDT", "BTC/USDT", "SOL/USDT", "DOGE/USDT"]),
            st.sampled_from(["buy", "sell"]),
            st.floats(min_value=0.0, max_value=400.0),
            st.sampled_from(["trend_v2", "trend_v2", "trend_v2", "martingale"]),
            st.sampled_from(["closed", "open", "rejected"]),
            st.booleans(),
        ),
    ),
    min_size=1,
    max_size=12,
)
PRICES = {"SOL/USDT": 100.0, "ETH/USDT": 3_000.0, "BTC/USDT": 60_000.0, "DOGE/USDT": 0.1}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_exchange_receives_exactly_the_approved_orders_with_their_quantities(sequence):
    clock = FakeClock()
    with RiskSupervisor(make_config(gate={"max_orders_per_s": 10_000}), clock=clock, poll_upstreams=False) as real:
        spy = SpySupervisor(real)
        ex = FakeExchange()
        guarded = GuardedExchange(ex, spy, account="main", exchange="binance", strategy_id="trend_v2")
        feed(real)  # a healthy start; the steps change it
        for step in sequence:
            if step[0] == "state":
                _, level, ess, equity = step
                feed(real, level, ess, equity)
                continue
            _, symbol, side, qty, strategy, status, with_stop = step
            ex.status = status
            before = len(ex.calls)
            price = PRICES[symbol]
            stop = price * (0.99 if side == "buy" else 1.01) if with_stop else None
            params = {"timeInForce": "GTC"}
            try:
                guarded.create_order(symbol, "limit", side, qty, price, params, strategy_id=strategy, stop_price=stop)
                blocked = None
            except OrderBlocked as exc:
                blocked = exc
            result = spy.results[-1]
            event(result.decision)
            if result.decision == "block":
                assert blocked is not None and blocked.result is result and len(ex.calls) == before
            else:
                assert blocked is None and len(ex.calls) == before + 1
                sent: Any = ex.calls[-1]
                assert sent[:3] == (symbol, "limit", side) and sent[3] == result.adjusted_quantity and sent[5] == params
                assert result.adjusted_quantity <= qty


def test_example_execution_service_runs_against_the_simulator():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "examples" / "execution_service.py"
    command = [sys.executable, str(script), "--self-contained"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("sent") and "asked 120" in line and " 100 " in line for line in lines)
    assert any(line.startswith("blocked") and "STRATEGY_NOT_ALLOWED" in line for line in lines)
    assert lines[-1].startswith("5 sent, 1 blocked")
