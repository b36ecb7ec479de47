"""NautilusTrader's RiskEngine beside our pure evaluation, in the same process.

Optional (`pip install nautilus_trader`): without it this section is skipped
with a printed line. Measured: `RiskEngine.execute(SubmitOrder)` for a limit
order on BTCUSDT, which runs its pre-trade checks and hands the order on to
the ExecutionEngine and a mock execution client (its own test kit's setup).
"""

from __future__ import annotations

import time

from bench.common import pct


def available() -> bool:
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        return False
    return True


def run(n: int = 5000) -> dict[str, float]:
    from nautilus_trader.common.component import MessageBus, TestClock
    from nautilus_trader.config import ExecEngineConfig, RiskEngineConfig
    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.execution.engine import ExecutionEngine
    from nautilus_trader.execution.messages import SubmitOrder
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import AccountType, OrderSide
    from nautilus_trader.model.identifiers import ClientId, Venue
    from nautilus_trader.model.objects import Price, Quantity
    from nautilus_trader.portfolio.portfolio import Portfolio
    from nautilus_trader.risk.engine import RiskEngine
    from nautilus_trader.test_kit.mocks.exec_clients import MockExecutionClient
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.test_kit.stubs.component import TestComponentStubs
    from nautilus_trader.test_kit.stubs.events import TestEventStubs
    from nautilus_trader.test_kit.stubs.identifiers import TestIdStubs
    from nautilus_trader.trading.strategy import Strategy

    instrument = TestInstrumentProvider.btcusdt_binance()
    clock, trader = TestClock(), TestIdStubs.trader_id()
    msgbus = MessageBus(trader_id=trader, clock=clock)
    cache = TestComponentStubs.cache()
    portfolio = Portfolio(msgbus=msgbus, cache=cache, clock=clock)
    exec_engine = ExecutionEngine(msgbus=msgbus, cache=cache, clock=clock, config=ExecEngineConfig())
    risk = RiskEngine(
        portfolio=portfolio,
        msgbus=msgbus,
        cache=cache,
        clock=clock,
        config=RiskEngineConfig(max_order_submit_rate="100000000/00:00:01"),
    )
    client = MockExecutionClient(
        client_id=ClientId("BINANCE"),
        venue=Venue("BINANCE"),
        account_type=AccountType.CASH,
        base_currency=USD,
        msgbus=msgbus,
        cache=cache,
        clock=clock,
    )
    portfolio.update_account(TestEventStubs.cash_account_state(account_id=TestIdStubs.account_id()))
    exec_engine.register_client(client)
    cache.add_instrument(instrument)
    exec_engine.start()
    risk.start()
    strategy = Strategy()
    strategy.register(trader_id=trader, portfolio=portfolio, msgbus=msgbus, cache=cache, clock=clock)
    qty, price = Quantity.from_str("0.010000"), Price.from_str("65000.00")
    samples = []
    perf = time.perf_counter_ns
    for _ in range(n):
        order = strategy.order_factory.limit(instrument.id, OrderSide.BUY, qty, price)
        command = SubmitOrder(
            trader_id=trader,
            strategy_id=strategy.id,
            position_id=None,
            order=order,
            command_id=UUID4(),
            ts_init=clock.timestamp_ns(),
        )
        t0 = perf()
        risk.execute(command)
        samples.append(perf() - t0)
    assert client.calls.count("submit_order") == n, "orders were denied: not the pre-trade path we meant to time"
    return {"p50_us": pct(samples, 0.5), "p99_us": pct(samples, 0.99)}
