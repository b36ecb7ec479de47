"""Probe 6 of the gate's price reference ([prices]): each test fails on a real problem.

No sleeps: FakeClock (time moves by `clock.advance`); prices pushed through
`report_prices` (the same parse and the same gate message as a poll) or applied to a
`GateState` directly.
"""

from __future__ import annotations

from pathlib import Path

from supervisor import RiskSupervisor
from supervisor.cli_control import _said_status, _verdict
from supervisor.clock import FakeClock
from supervisor.config import load_config
from supervisor.core.messages import PriceSnapshot
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.test_probe_config import toml_of
from tests.helpers import account_state, config_dict, decide, feed, fresh_state, make_config, order

RICH = 1e7


def _metric(sup: RiskSupervisor, name: str) -> dict[str, float]:
    """Every sample of `name` in /metrics, by its label text."""
    out: dict[str, float] = {}
    for line in sup.metrics.exposition().decode().splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def _prices(sup: RiskSupervisor, clock: FakeClock, **prices: float) -> None:
    sup.report_prices({"timestamp": clock.now().isoformat(), "prices": prices})


# 1. Turning [prices] on throws the caller's reference_price away: with the shipped
#    collar_missing_reference = "allow" (config.toml sets it explicitly), a symbol outside
#    prices.symbols is collared on nothing at all, where without [prices] it was collared
#    on the order's own reference_price. Enabling the price reference weakens the collar.


def test_enabling_prices_does_not_let_a_buy_at_100x_its_own_reference_price_through(clock):
    fat_finger = order(symbol="SOLUSDT", quantity=1.0, price=1_500.0, reference_price=15.0)
    without = make_config(gate={"collar_missing_reference": "allow"})
    st = fresh_state(clock, account_state(equity=RICH))
    assert decide(fat_finger, st, without, clock).reason_code is RC.PRICE_OUT_OF_COLLAR  # the claim collars it

    # The same gate with a prices source for BTC only (docs/prices.md, config.toml's commented example).
    with_prices = make_config(
        gate={"collar_missing_reference": "allow"},
        prices={"url": "http://127.0.0.1:9", "symbols": ["BTCUSDT"]},
    )
    st = fresh_state(clock, account_state(equity=RICH))
    st.prices.apply(
        PriceSnapshot(clock.now(), {"BTCUSDT": 65_000.0}), clock.monotonic(), clock.now(), with_prices.prices
    )
    r = decide(fat_finger, st, with_prices, clock)
    assert r.decision == "block", (
        f"buy at 1,500 with reference_price 15 allowed once [prices] is on (blocked without it): {r.reason}"
    )


# 2. risk_gate_collar_unreferenced_total ("orders let through with no reference price for the
#    collar") does not count such an order: the counter asks collar_reference(), which still
#    returns the reference_price that the collar itself ignored.


def test_the_unreferenced_counter_counts_an_order_the_collar_let_through_on_nothing(clock):
    cfg = make_config(
        gate={"collar_missing_reference": "allow"},
        prices={"url": "http://127.0.0.1:9", "symbols": ["BTCUSDT"]},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, BTCUSDT=65_000.0)
        before = _metric(sup, "risk_gate_collar_unreferenced_total").get("risk_gate_collar_unreferenced_total", 0.0)
        r = sup.evaluate(order(symbol="SOLUSDT", quantity=1.0, price=1_500.0, reference_price=15.0, order_id="c"))
        assert r.reason_code is RC.PRICE_OUT_OF_COLLAR  # held to its own claim at least (problem 1)
        r = sup.evaluate(order(symbol="SOLUSDT", quantity=1.0, price=150.0))
        assert r.decision == "allow"  # let through by collar_missing_reference = "allow": no reference at all
        after = _metric(sup, "risk_gate_collar_unreferenced_total").get("risk_gate_collar_unreferenced_total", 0.0)
        assert after == before + 1, "an order the collar judged on no reference at all is not counted"


# 3. With prices.symbols empty (the default: "every configured symbol"), a configured symbol the
#    source has never priced blocks as PRICE_REFERENCE_STALE, yet /v1/state's prices, the banner's
#    symbols_unpriced and risk_gate_price_fresh (hence the RiskGatePriceStale alert) never name it.


def test_a_covered_symbol_never_priced_is_shown_as_unpriced(clock):
    cfg = make_config(prices={"url": "http://127.0.0.1:9"})  # no symbols list: every [symbols.X] must be priced
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, BTCUSDT=65_000.0)  # the source prices BTC only
        r = sup.evaluate(order(symbol="SOLUSDT", quantity=1.0, price=150.0))
        assert r.reason_code is RC.PRICE_REFERENCE_STALE  # SOL's opening orders block...
        state = sup.state()
        fresh = _metric(sup, "risk_gate_price_fresh")
        assert "SOLUSDT" in state["banner"]["symbols_unpriced"], (
            f"...but the banner says unpriced={state['banner']['symbols_unpriced']}, /v1/state prices lists"
            f" {sorted(state['prices'])}, risk_gate_price_fresh has {sorted(fresh)}"
        )
        assert fresh.get('risk_gate_price_fresh{symbol="SOLUSDT"}') == 0.0, f"no SOL series: {sorted(fresh)}"


# 4. A reload that lowers prices.max_age_s is "applied" (docs/prices.md: every key but url,
#    exchange, poll_interval_s, timeout_s) but a price already held keeps the freshness computed
#    under the old value: with the source silent, a 20 s old price still counts as fresh under
#    max_age_s = 5, and /v1/state shows it fresh with age_s 20 > max_age_s 5.


def test_a_reload_lowering_max_age_s_makes_a_held_price_that_old_stale(clock, tmp_path):
    def text(max_age_s: float) -> str:
        return toml_of(config_dict(prices={"url": "http://127.0.0.1:9", "max_age_s": max_age_s}))

    path = Path(tmp_path / "riskgate.toml")
    path.write_text(text(60.0))
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=100.0)
        path.write_text(text(5.0))
        assert sup.reload(path)["changed"] == ["prices.max_age_s"]
        clock.advance(20.0)  # the prices source silent since: its last price is 20 s old
        feed(sup, RICH)
        row = sup.state()["prices"]["SOLUSDT"]
        r = sup.evaluate(order(symbol="SOLUSDT", quantity=1.0, price=100.0))
        assert r.reason_code is RC.PRICE_REFERENCE_STALE, (
            f"a 20 s old price under max_age_s=5: {r.decision} {r.reason_code}; /v1/state: {row}"
        )


# 5. After a restart, the reservations recalled from the journal are valued at the order's own
#    price, not at the higher fresh mark they were booked at (docs/prices.md: "the reservation it
#    holds ... is valued at the higher of its own price and the fresh mark"). A restart frees the
#    difference: an order that scaled to the cap before the restart passes whole after it.


def test_a_restart_does_not_free_the_part_of_a_reservation_valued_at_the_mark(clock, tmp_path):
    cfg = make_config(prices={"url": "http://127.0.0.1:9"}, state={"dir": str(tmp_path / "state")})
    buy = order(symbol="ETHUSDT", side="buy", quantity=14.0, price=3_000.0, order_id="eth-1")
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, ETHUSDT=3_500.0)
        assert sup.evaluate(buy).decision == "allow"
        before = sup.state()["accounts"]["main"]["reserved_usd"]
        assert before == 14 * 3_500.0  # 49,000 of main's 50,000 cap, valued at the mark
        sup.flush_journal()
    clock.advance(1.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:  # the same process restarted
        feed(sup, RICH)
        _prices(sup, clock, ETHUSDT=3_500.0)
        after = sup.state()["accounts"]["main"]["reserved_usd"]
        r = sup.evaluate(order(symbol="ETHUSDT", side="buy", quantity=2.0, price=3_500.0, order_id="eth-2"))
        assert after == before, (
            f"reserved {before:,.0f} before the restart, {after:,.0f} after; then 2 ETH (7,000) on a"
            f" 1,000 room: {r.decision} {r.adjusted_quantity}"
        )


# 6. A flapping feed (two replicas alternating, a bouncing tick): the symbol stays paused
#    throughout, one pause extended, yet every poll journals a new price_spike_pause, logs a
#    warning and counts risk_gate_price_pauses_total up (10 "pauses" in 10 s of one pause).


def test_one_continuous_pause_is_counted_once(clock):
    cfg = make_config(prices={"url": "http://127.0.0.1:9", "spike_pct": 10.0, "spike_pause_s": 120.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=100.0)
        for i in range(10):
            clock.advance(1.0)
            _prices(sup, clock, SOLUSDT=115.0 if i % 2 == 0 else 100.0)
            feed(sup, RICH)
            assert sup.evaluate(order(symbol="SOLUSDT", price=110.0)).reason_code is RC.PRICE_SPIKE_PAUSE
        pauses = _metric(sup, "risk_gate_price_pauses_total")
        assert pauses.get('risk_gate_price_pauses_total{symbol="SOLUSDT"}') == 1.0, (
            f"one continuous pause counted as {pauses}"
        )


# 7. `riskgate status` ("one verdict with every cause") says TRADING, exit 0, with nothing else
#    while a symbol is paused after a spike and others have no fresh price (their opening orders
#    all block): it reads the banner's causes, never its symbols_paused / symbols_unpriced.


def test_status_names_paused_and_unpriced_symbols():
    doc = {
        "banner": {
            "state": "TRADING",
            "causes": [],
            "also": [],
            "accounts_blocked": [],
            "accounts_locked": [],
            "symbols_paused": ["SOLUSDT"],
            "symbols_unpriced": ["BTCUSDT", "ETHUSDT"],
        },
        "not_ready": [],
        "accounts": {},
    }  # as GET /v1/state answered in the probe's run (SOL spiked, the prices source answering 500)
    said = _said_status(_verdict(doc))
    assert "SOLUSDT" in said and "BTCUSDT" in said, f"riskgate status printed only: {said!r}"
