"""A real ccxt exchange object behind the gate: its markets set here, its HTTP
layer replaced, so the test sees the request ccxt would really send."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import pytest

from supervisor import AccountSnapshot, AsyncGuardedExchange, GuardedExchange, OrderBlocked, RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import make_config, signal

ccxt = pytest.importorskip("ccxt")
ccxt_async = pytest.importorskip("ccxt.async_support")

MARKET = {
    "id": "SOLUSDT",
    "symbol": "SOL/USDT",
    "base": "SOL",
    "quote": "USDT",
    "baseId": "SOL",
    "quoteId": "USDT",
    "type": "spot",
    "spot": True,
    "margin": False,
    "swap": False,
    "future": False,
    "option": False,
    "contract": False,
    "active": True,
    "linear": None,
    "inverse": None,
    "settle": None,
    "settleId": None,
    "contractSize": None,
    "expiry": None,
    "expiryDatetime": None,
    "strike": None,
    "optionType": None,
    "taker": 0.001,
    "maker": 0.001,
    "precision": {"amount": 0.01, "price": 0.01},
    "limits": {
        "amount": {"min": 0.01, "max": 100000},
        "price": {"min": 0.01, "max": 1e6},
        "cost": {"min": 5, "max": None},
    },
    "info": {"orderTypes": ["LIMIT", "MARKET"]},
}


def binance_answer(params: dict) -> dict:
    qty = params["quantity"][0]
    return {
        "symbol": "SOLUSDT",
        "orderId": 42,
        "clientOrderId": params["newClientOrderId"][0],
        "transactTime": 1767614400000,
        "price": params.get("price", ["0"])[0],
        "origQty": qty,
        "executedQty": qty,
        "cummulativeQuoteQty": "0",
        "status": "FILLED",
        "type": params["type"][0],
        "side": params["side"][0],
        "fills": [],
    }


def binance(async_: bool = False):
    exchange = (ccxt_async.binance if async_ else ccxt.binance)({"apiKey": "test-key", "secret": "test-secret"})
    exchange.set_markets([MARKET])
    sent: list[tuple[str, str, dict]] = []

    def answer(url, method="GET", headers=None, body=None):
        params = parse_qs(body or url.split("?", 1)[-1])
        sent.append((method, url.split("?", 1)[0], params))
        return binance_answer(params)

    if async_:

        async def fetch(url, method="GET", headers=None, body=None):
            return answer(url, method, headers, body)

        exchange.fetch = fetch
    else:
        exchange.fetch = answer
    return exchange, sent


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as s:
        s.report_ess_active(False)
        s.report_account_snapshot(AccountSnapshot("main", 1_000_000.0))
        yield s


def test_ccxt_binance_sends_the_scaled_amount(sup, clock):
    sup.report_risk_signal(signal("WARNING", clock.now()))
    exchange, sent = binance()
    guarded = GuardedExchange(exchange, sup, account="main", exchange="binance", strategy_id="trend_v2")
    order = guarded.create_order("SOL/USDT", "limit", "buy", 7.3, 100.0, stop_price=99.0)
    method, url, params = sent[0]
    assert (method, url) == ("POST", "https://api.binance.com/api/v3/order")
    assert params["quantity"] == ["3.6"] and params["side"] == ["BUY"]  # 7.3 x 0.5, down to the lot
    assert order["filled"] == 3.6
    tracked = sup.actor_ref("account_tracker").proxy().latest().get(timeout=5)
    assert [(p.symbol, p.quantity) for p in tracked[0].positions] == [("SOLUSDT", 3.6)]


def test_ccxt_binance_blocked_order_sends_nothing(sup, clock):
    sup.report_risk_signal(signal("CRITICAL", clock.now()))
    exchange, sent = binance()
    guarded = GuardedExchange(exchange, sup, account="main", exchange="binance", strategy_id="trend_v2")
    with pytest.raises(OrderBlocked) as info:
        guarded.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
    assert info.value.result.reason_code is RC.GLOBAL_RISK_CRITICAL and sent == []


def test_ccxt_async_support_binance(sup, clock):
    sup.report_risk_signal(signal("INFO", clock.now()))
    exchange, sent = binance(async_=True)
    guarded = AsyncGuardedExchange(exchange, sup, account="main", exchange="binance", strategy_id="trend_v2")

    async def scenario():
        try:
            return await guarded.create_order("SOL/USDT", "market", "buy", 250.0, reference_price=100.0)
        finally:
            await exchange.close()

    order = asyncio.run(scenario())
    # no stop: 1% of 1,000,000 equity at risk = 100 SOL at 100
    assert sent[0][2]["quantity"] == ["100"] and sent[0][2]["type"] == ["MARKET"]
    assert order["amount"] == 100.0


def resting_binance(async_: bool = False):
    """binance whose orders rest (NEW) and whose cancels answer as binance does."""
    exchange = (ccxt_async.binance if async_ else ccxt.binance)({"apiKey": "test-key", "secret": "test-secret"})
    exchange.set_markets([MARKET])
    sent: list[tuple[str, str, dict]] = []

    def order_answer(params: dict, order_id: int, status: str) -> dict:
        return {
            "symbol": "SOLUSDT",
            "orderId": order_id,
            "clientOrderId": params.get("newClientOrderId", params.get("origClientOrderId", ["x"]))[0],
            "transactTime": 1767614400000,
            "price": "100",
            "origQty": params.get("quantity", ["1"])[0],
            "executedQty": "0",
            "cummulativeQuoteQty": "0",
            "status": status,
            "type": "LIMIT",
            "side": "BUY",
        }

    def answer(url, method="GET", headers=None, body=None):
        params = parse_qs(body or url.split("?", 1)[-1])
        path = url.split("?", 1)[0]
        sent.append((method, path, params))
        if method == "DELETE" and path.endswith("/openOrders"):
            return [order_answer(params, 1, "CANCELED"), order_answer(params, 2, "CANCELED")]
        if method == "DELETE":
            return order_answer(params, int(params["orderId"][0]), "CANCELED")
        return order_answer(params, sum(m == "POST" for m, _, _ in sent), "NEW")

    exchange.fetch = answer
    return exchange, sent


def test_while_halted_cancels_reach_a_real_ccxt_exchange_and_release_reservations(sup, clock):
    sup.report_risk_signal(signal("INFO", clock.now()))
    exchange, sent = resting_binance()
    guarded = GuardedExchange(exchange, sup, account="main", exchange="binance", strategy_id="trend_v2")
    first = guarded.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
    guarded.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
    assert first["status"] == "open" and sup.health()["gate"]["reservations"] == 2
    sup.report_ess_active(True, "drawdown")
    with pytest.raises(OrderBlocked):
        guarded.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
    cancelled = guarded.cancel_order(first["id"], "SOL/USDT")
    assert cancelled["status"] == "canceled"
    method, url, params = sent[-1]
    assert (method, url, params["orderId"]) == ("DELETE", "https://api.binance.com/api/v3/order", ["1"])
    assert sup.health()["gate"]["reservations"] == 1
    guarded.cancel_all_orders("SOL/USDT")
    assert sent[-1][:2] == ("DELETE", "https://api.binance.com/api/v3/openOrders")
    assert sup.health()["gate"]["reservations"] == 0
