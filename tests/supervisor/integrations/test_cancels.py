"""Cancels always pass, edits and ccxt shortcuts go through the gate, and a halt cancels resting orders."""

from __future__ import annotations

import threading

import pytest

from supervisor import AccountSnapshot, GuardedAdapter, GuardedExchange, OrderBlocked, RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from supervisor.journal.store import JOURNAL_NAME, JournalReader
from tests.helpers import make_config, signal


class PaperExchange:
    """A ccxt-style paper exchange: limit orders rest until cancelled."""

    def __init__(self) -> None:
        self.resting: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.n = 0

    def create_order(self, symbol, type, side, amount, price=None, params=None):  # noqa: A002 - ccxt's signature
        self.n += 1
        self.calls.append(("create_order", symbol, type, side, amount, price))
        order = {"id": f"p-{self.n}", "symbol": symbol, "status": "open", "amount": amount, "filled": 0.0}
        self.resting[order["id"]] = order
        return dict(order)

    def cancel_order(self, id, symbol=None, params=None):  # noqa: A002 - ccxt's signature
        self.calls.append(("cancel_order", id, symbol))
        order = self.resting.pop(id)
        return {**order, "status": "canceled"}

    def cancel_all_orders(self, symbol=None, params=None):
        self.calls.append(("cancel_all_orders", symbol))
        gone = [o for o in self.resting.values() if symbol is None or o["symbol"] == symbol]
        for o in gone:
            del self.resting[o["id"]]
        return [{**o, "status": "canceled"} for o in gone]

    def edit_order(self, id, symbol, type, side, amount=None, price=None, params=None):  # noqa: A002
        self.calls.append(("edit_order", id, symbol, type, side, amount, price))
        self.resting.pop(id)
        self.n += 1
        order = {"id": f"p-{self.n}", "symbol": symbol, "status": "open", "amount": amount, "filled": 0.0}
        self.resting[order["id"]] = order
        return dict(order)


class PaperAdapter:
    def __init__(self) -> None:
        self.resting: dict[str, dict] = {}
        self.n = 0

    def submit_order(self, symbol, side, quantity, price, leverage=None):
        self.n += 1
        order = {"order_id": f"a-{self.n}", "filled_qty": 0.0, "avg_price": None, "status": "open"}
        self.resting[order["order_id"]] = order
        return dict(order)

    def cancel_order(self, order_id):
        self.resting.pop(order_id)
        return {"order_id": order_id, "status": "cancelled", "filled_qty": 0.0}

    def cancel_all_orders(self):
        gone = list(self.resting)
        self.resting.clear()
        return [{"order_id": i, "status": "cancelled"} for i in gone]


def feed(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 1_000_000.0))


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(gate={"max_orders_per_s": 10_000}), clock=clock, poll_upstreams=False) as s:
        feed(s)
        yield s


def guarded(sup, client=None):
    return GuardedExchange(client or PaperExchange(), sup, account="main", exchange="binance", strategy_id="trend_v2")


def reservations(sup) -> int:
    return sup.health()["gate"]["reservations"]


def test_cancels_pass_while_halted_and_release_the_reservation(sup):
    paper = PaperExchange()
    ex = guarded(sup, paper)
    first = ex.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
    ex.create_order("SOL/USDT", "limit", "buy", 3.0, 100.0)
    ex.create_order("ETH/USDT", "limit", "buy", 0.5, 3000.0)
    assert reservations(sup) == 3
    sup.report_ess_active(True, "drawdown")
    with pytest.raises(OrderBlocked):
        ex.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
    assert ex.cancel_order(first["id"], "SOL/USDT")["status"] == "canceled"
    assert reservations(sup) == 2
    assert len(ex.cancel_all_orders("SOL/USDT")) == 1
    assert reservations(sup) == 1 and list(paper.resting) == ["p-3"]
    ex.cancel_all_orders()
    assert reservations(sup) == 0 and paper.resting == {}
    sup.flush_journal()
    reader = JournalReader(sup.config.state.dir / JOURNAL_NAME)
    try:
        cancels = [e for e in reader.events(limit=100) if e["kind"] == "order_cancel"]
    finally:
        reader.close()
    assert len(cancels) == 3 and all(e["account"] == "main" for e in cancels)


def test_a_cancel_that_fails_is_journaled_and_keeps_the_reservation(sup):
    paper = PaperExchange()
    ex = guarded(sup, paper)
    ex.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
    with pytest.raises(KeyError):
        ex.cancel_order("not-there")
    assert reservations(sup) == 1


def test_ccxt_shortcuts_go_through_the_gate(sup):
    paper = PaperExchange()
    ex = guarded(sup, paper)
    ex.create_limit_buy_order("SOL/USDT", 1.0, 100.0)
    ex.create_market_sell_order("SOL/USDT", 1.0, reference_price=100.0)
    ex.create_market_order("SOL/USDT", "buy", 1.0, 100.0)  # ccxt's price argument: the reference, not sent
    assert [c[:6] for c in paper.calls] == [
        ("create_order", "SOL/USDT", "limit", "buy", 1.0, 100.0),
        ("create_order", "SOL/USDT", "market", "sell", 1.0, None),
        ("create_order", "SOL/USDT", "market", "buy", 1.0, None),
    ]
    sup.report_ess_active(True, "halt")
    with pytest.raises(OrderBlocked) as info:
        ex.create_limit_sell_order("SOL/USDT", 1.0, 100.0)
    assert info.value.result.reason_code is RC.ESS_HALT_ACTIVE and len(paper.calls) == 3


def test_an_edit_is_a_new_order_for_the_gate(sup):
    paper = PaperExchange()
    ex = guarded(sup, paper)
    first = ex.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
    edited = ex.edit_order(first["id"], "SOL/USDT", "limit", "buy", 4.0, 99.0)
    assert paper.calls[-1] == ("edit_order", "p-1", "SOL/USDT", "limit", "buy", 4.0, 99.0)
    assert reservations(sup) == 1  # the old one's went with it
    sup.report_ess_active(True, "halt")
    with pytest.raises(OrderBlocked):
        ex.edit_order(edited["id"], "SOL/USDT", "limit", "buy", 5.0, 99.0)
    assert paper.calls[-1][0] == "edit_order" and paper.calls[-1][1] == "p-1"  # nothing sent for the blocked edit


def test_the_adapter_cancels_while_halted(sup):
    paper = PaperAdapter()
    ad = GuardedAdapter(paper, sup, account="main", exchange="binance", strategy_id="trend_v2")
    one = ad.submit_order("SOL/USDT", "buy", 1.0, 100.0)
    ad.submit_order("SOL/USDT", "buy", 1.0, 100.0)
    sup.report_ess_active(True, "halt")
    ad.cancel_order(one["order_id"])
    assert reservations(sup) == 1
    ad.cancel_all_orders()
    assert reservations(sup) == 0 and paper.resting == {}


@pytest.mark.parametrize("enabled", [True, False])
def test_a_halt_cancels_resting_orders_within_one_ess_poll(clock, tmp_path, enabled):
    kill = tmp_path / "KILL_SWITCH"
    cfg = make_config(
        gate={"max_orders_per_s": 10_000},
        ess={"kill_switch_file": str(kill), "cancel_open_orders_on_halt": enabled},
    )
    with RiskSupervisor(cfg, clock=clock) as sup:  # the ESS watcher polls the kill-switch file
        sup.poll_now()  # its first reading is on the board before the first order
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 1_000_000.0))
        paper = PaperExchange()
        ex = guarded(sup, paper)
        ex.create_order("SOL/USDT", "limit", "buy", 2.0, 100.0)
        ex.create_order("ETH/USDT", "limit", "sell", 0.5, 3000.0)
        heard = threading.Event()
        sup.on_halt(lambda reason: heard.set())
        kill.write_text("risk desk: stop everything\n")
        clock.advance(0.5)  # one ESS poll
        assert heard.wait(10), "the halt never reached the listeners"
        assert sup.settle_halt_listeners(10)  # the client's cancels have returned
        if enabled:
            assert paper.resting == {}
            assert sorted(c[1] for c in paper.calls if c[0] == "cancel_order") == ["p-1", "p-2"]
            assert reservations(sup) == 0
        else:
            assert len(paper.resting) == 2 and reservations(sup) == 2
        clock.advance(0.5)  # still halted: no second round of cancels
        assert sum(c[0] == "cancel_order" for c in paper.calls) == (2 if enabled else 0)


def test_a_halt_cancels_an_async_clients_resting_orders_on_its_own_loop(clock):
    import asyncio

    from supervisor import AsyncGuardedAdapter

    all_gone = threading.Event()

    class AsyncPaper(PaperAdapter):
        async def submit_order(self, *args, **kwargs):  # type: ignore[override]
            return PaperAdapter.submit_order(self, *args, **kwargs)

        async def cancel_order(self, order_id):  # type: ignore[override]
            out = PaperAdapter.cancel_order(self, order_id)
            if not self.resting:
                all_gone.set()
            return out

    cfg = make_config(gate={"max_orders_per_s": 10_000}, ess={"cancel_open_orders_on_halt": True})
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
            feed(sup)
            paper = AsyncPaper()
            ad = AsyncGuardedAdapter(paper, sup, account="main", exchange="binance", strategy_id="trend_v2")
            for _ in range(2):
                asyncio.run_coroutine_threadsafe(ad.submit_order("SOL/USDT", "buy", 1.0, 100.0), loop).result(10)
            assert len(paper.resting) == 2
            sup.report_ess_active(True, "halt")
            assert all_gone.wait(10), "the async client's orders were not cancelled"
            # The releases run on the client's loop after the cancels: wait for them there.
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(10)
            assert paper.resting == {}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)


def test_cancels_and_edits_count_toward_the_message_rate_but_are_never_blocked(clock):
    cfg = make_config(gate={"max_orders_per_s": 100, "max_messages_per_s": 4})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        paper = PaperExchange()
        ex = guarded(sup, paper)
        first = ex.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)  # 1 message
        edited = ex.edit_order(first["id"], "SOL/USDT", "limit", "buy", 1.0, 99.0)  # an order and an edit: 3
        ex.cancel_order(edited["id"], "SOL/USDT")  # 4: the cancel itself still passes
        with pytest.raises(OrderBlocked) as info:
            ex.create_order("SOL/USDT", "limit", "buy", 1.0, 98.0)
        assert (
            info.value.result.reason_code is RC.ORDER_RATE_EXCEEDED and "max_messages_per_s" in info.value.result.reason
        )
        clock.advance(1.0)
        feed(sup)
        assert ex.create_order("SOL/USDT", "limit", "buy", 1.0, 97.0)["status"] == "open"
