"""The prices source ([prices]) against the upstream simulator over real loopback HTTP.

Time is a FakeClock: advancing it fires the poll timers; a ping to each polled actor
afterwards waits until its poll is done (mailboxes are FIFO).
"""

from __future__ import annotations

import pytest

from supervisor import RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sim.simulator import UpstreamSimulator
from tests.actors.test_sources import healthy, source_config
from tests.helpers import order

MARKET = {"SOLUSDT": 150.0, "BTCUSDT": 65_000.0, "ETHUSDT": 3_000.0}
LOT = {"SOLUSDT": 0.1, "BTCUSDT": 0.001, "ETHUSDT": 0.01}
PRICES = {"poll_interval_s": 1.0, "timeout_s": 0.3, "max_age_s": 3.0, "spike_pct": 10.0, "spike_window_s": 60.0}


def advance(sup: RiskSupervisor, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    for name in ("ess_watcher", "risk_v3_poller", "account_tracker", "price_poller"):
        ref = sup.actor_ref(name)
        if ref is not None:
            ref.proxy().ping().get(timeout=10)


@pytest.fixture
def sim(clock):
    with UpstreamSimulator(clock=clock) as s:
        yield s


@pytest.fixture
def sup(sim, clock, tmp_path):
    healthy(sim)
    sim.set_prices(MARKET)
    config = source_config(sim, tmp_path / "KILL", prices={"url": sim.url, **PRICES})
    with RiskSupervisor(config, clock=clock) as s:
        advance(s, clock, 0)
        yield s


def test_a_buy_at_ten_times_the_mark_blocks_for_an_account_holding_nothing(sup):
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=1_500.0))
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR, r.reason
    assert "150" in r.reason
    # The caller's word does not move the collar: a reference_price of 1,500 is refused too.
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=1_500.0, reference_price=1_500.0))
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=151.0)).decision == "allow"


def test_without_a_prices_source_the_same_buy_passes_as_before(sim, clock, tmp_path):
    """The hole the issue names (collar_missing_reference = allow, no reference): kept
    as the behaviour without [prices], so that the test above means something."""
    healthy(sim)
    with RiskSupervisor(source_config(sim, tmp_path / "KILL"), clock=clock) as s:
        advance(s, clock, 0)
        r = s.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=1_500.0, stop_price=1_499.0))
        assert r.decision == "allow", r.reason


def test_a_stale_price_blocks_its_symbol_while_others_trade(sup, sim, clock):
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=150.0)).decision == "allow"
    sim.set_prices({"SOLUSDT": None})  # the source stops pricing SOL; BTC and ETH go on
    advance(sup, clock, 2.0)
    advance(sup, clock, 2.0)
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=150.0))
    assert r.reason_code is RC.PRICE_REFERENCE_STALE, r.reason
    r = sup.evaluate(order(symbol="ETHUSDT", quantity=0.01, price=3_000.0))
    assert r.decision == "allow", r.reason
    state = sup.state()
    assert state["prices"]["SOLUSDT"]["fresh"] is False
    assert state["prices"]["ETHUSDT"]["fresh"] is True
    assert state["ready"] is True  # the gate decides: only SOL's opening orders block
    assert state["banner"]["symbols_unpriced"] == ["SOLUSDT"]


def test_the_whole_source_down_blocks_every_symbol_it_priced(sup, sim, clock):
    sim.set_fault("prices", "500")
    advance(sup, clock, 2.0)
    advance(sup, clock, 2.0)
    for symbol, price in MARKET.items():
        r = sup.evaluate(order(symbol=symbol, quantity=LOT[symbol], price=price))
        assert r.reason_code is RC.PRICE_REFERENCE_STALE, (symbol, r.reason)
    sim.set_fault("prices", "none")
    advance(sup, clock, 1.0)
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=150.0)).decision == "allow"


def test_a_source_answering_old_prices_goes_stale_when_the_held_ones_age_out(sup, sim, clock):
    sim.set_fault("prices", "stale", delay_s=10.0)  # a source that stopped pricing but still answers
    advance(sup, clock, 1.0)
    advance(sup, clock, 1.0)
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=150.0)).decision == "allow"  # 2 s old
    advance(sup, clock, 2.0)  # 4 s > prices.max_age_s: what it answers (10 s old) is no fresher
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=150.0))
    assert r.reason_code is RC.PRICE_REFERENCE_STALE, r.reason


def test_a_fifteen_percent_move_pauses_that_symbol(sup, sim, clock):
    sim.set_prices({"SOLUSDT": 172.5})  # +15 % within the window
    advance(sup, clock, 1.0)
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=172.5))
    assert r.reason_code is RC.PRICE_SPIKE_PAUSE, r.reason
    assert sup.evaluate(order(symbol="ETHUSDT", quantity=0.01, price=3_000.0)).decision == "allow"
    state = sup.state()
    paused = state["prices"]["SOLUSDT"]
    assert paused["pause"] and paused["paused_until"]
    assert state["banner"]["symbols_paused"] == ["SOLUSDT"]  # the banner says it, not "every source fresh"
    advance(sup, clock, 121.0)  # prices.spike_pause_s (120 by default) later: trading resumes
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=172.5))
    assert r.decision == "allow", r.reason


def test_a_paused_symbol_still_lets_a_reduction_through(sup, sim, clock):
    sim.set_account("main", 10_000.0, [{"symbol": "SOLUSDT", "exchange": "binance", "quantity": 2.0,
                                        "mark_price": 150.0}])  # fmt: skip
    advance(sup, clock, 5.0)
    sim.set_prices({"SOLUSDT": 120.0})  # -20 %
    advance(sup, clock, 1.0)
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=120.0)).reason_code is RC.PRICE_SPIKE_PAUSE
    r = sup.evaluate(order(symbol="SOLUSDT", side="sell", quantity=1.0, price=119.0))
    assert r.decision == "allow", r.reason


def test_the_collar_over_a_period_holds_an_order_to_the_mark_a_window_ago(sup, sim, clock):
    # Small steps, none a spike: 150 -> 160 within the window. A buy at 170 is within the
    # collar (10 %) of today's mark but not of the mark 60 s ago (at most 165).
    for price in (155.0, 160.0):
        sim.set_prices({"SOLUSDT": price})
        advance(sup, clock, 1.0)
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=170.0))
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR, r.reason
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=164.0)).decision == "allow"
    advance(sup, clock, 61.0)  # the window has moved on: 160 is the mark then and now
    assert sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=170.0)).decision == "allow"


def test_hostile_prices_are_dropped_never_guessed(sup, sim, clock):
    sim.set_prices({"SOLUSDT": "150", "ETHUSDT": -1, "BTCUSDT": float("inf")})
    advance(sup, clock, 1.0)
    for symbol, price in MARKET.items():
        r = sup.evaluate(order(symbol=symbol, quantity=LOT[symbol], price=price))
        assert r.reason_code is RC.PRICE_REFERENCE_STALE, (symbol, r.reason)


def test_exposure_follows_the_mark_between_snapshots(sup, sim, clock):
    sim.set_account("main", 10_000.0, [{"symbol": "SOLUSDT", "exchange": "binance", "quantity": 2.0,
                                        "mark_price": 150.0}])  # fmt: skip
    advance(sup, clock, 5.0)
    assert sup.state()["accounts"]["main"]["gross_exposure_usd"] == 300.0
    sim.set_prices({"SOLUSDT": 160.0})  # +6.7 %: no spike; the account's next snapshot is 5 s away
    advance(sup, clock, 1.0)
    assert sup.state()["accounts"]["main"]["gross_exposure_usd"] == 320.0


def test_a_spike_pause_holds_across_a_restart(clock, tmp_path):
    """The window that showed the spike goes with the process: the journaled pause is recalled."""
    from supervisor.core.messages import PriceSnapshot
    from tests.helpers import feed, make_config

    cfg = make_config(prices={"url": "http://127.0.0.1:9", "spike_pause_s": 120.0}, state={"dir": str(tmp_path)})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.report_prices(PriceSnapshot(clock.now(), {"SOLUSDT": 100.0}))
        clock.advance(1.0)
        sup.report_prices(PriceSnapshot(clock.now(), {"SOLUSDT": 116.0}))
        assert sup.evaluate(order(price=116.0, quantity=0.1)).reason_code is RC.PRICE_SPIKE_PAUSE
        sup.flush_journal()
    clock.advance(5.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:  # restarted 5 s later
        feed(sup)
        sup.report_prices(PriceSnapshot(clock.now(), {"SOLUSDT": 116.0}))
        r = sup.evaluate(order(price=116.0, quantity=0.1, order_id="after-restart"))
        assert r.reason_code is RC.PRICE_SPIKE_PAUSE, r.reason
        clock.advance(120.0)
        feed(sup)
        sup.report_prices(PriceSnapshot(clock.now(), {"SOLUSDT": 116.0}))
        r = sup.evaluate(order(price=116.0, quantity=0.1, order_id="after-pause"))
        assert r.decision == "allow", r.reason
