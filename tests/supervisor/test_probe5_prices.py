"""Probe of the gate's price reference ([prices]): each test fails on a real problem.

No sleeps: FakeClock (time moves by `clock.advance`), the upstream simulator over
loopback HTTP where the poller is involved, fake ccxt exchange objects otherwise.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from supervisor import RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import ConfigError, load_config
from supervisor.core.messages import PriceSnapshot
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sim.simulator import UpstreamSimulator
from supervisor.sources.exchange_prices import ExchangeError, ExchangeTickers
from supervisor.sources.upstream import parse_prices
from tests.actors.test_prices import advance
from tests.actors.test_sources import healthy, source_config
from tests.adversarial.test_probe_config import toml_of
from tests.helpers import account_state, config_dict, decide, feed, fresh_state, make_config, order

RICH = 1e9
PRICES = {"poll_interval_s": 1.0, "timeout_s": 0.3, "max_age_s": 3.0, "spike_pct": 10.0, "spike_window_s": 60.0}
MARKET = {"SOLUSDT": 150.0, "BTCUSDT": 65_000.0, "ETHUSDT": 3_000.0}


def _cfg(**prices):
    return make_config(
        accounts={"main": {"exchange": "binance", "capital_profile": "aggressive"}},
        prices={"url": "http://127.0.0.1:9", "max_age_s": 5.0, "spike_pct": 10.0, "spike_window_s": 60.0, **prices},
    )


def _snap(clock: FakeClock, price: float, symbol: str = "SOLUSDT") -> PriceSnapshot:
    return PriceSnapshot(clock.now(), {symbol: price})


def _refresh(state, clock: FakeClock) -> None:
    """Every other source fresh again after the clock moved (so only the prices decide)."""
    now = clock.monotonic()
    state.ess_received = state.signal_received = now
    state.put_account(account_state(equity=RICH), now)


def _ms(when) -> float:
    return when.timestamp() * 1000.0


class FakeExchange:
    def __init__(self, markets, tickers):
        self.markets, self.tickers, self.load_calls = markets, tickers, 0

    def load_markets(self):
        self.load_calls += 1
        return self.markets() if callable(self.markets) else self.markets

    def fetch_tickers(self, symbols):
        return self.tickers


@pytest.fixture
def sim(clock):
    with UpstreamSimulator(clock=clock) as s:
        yield s


# 1. report_prices(PriceSnapshot) throws away `dropped` ------------------------------------------


def test_facade_snapshot_naming_a_dropped_symbol_unprices_it(clock):
    cfg = make_config(prices={"url": "http://127.0.0.1:9", "max_age_s": 5.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.report_prices({"timestamp": clock.now().isoformat(), "prices": {"SOLUSDT": 100.0, "BTCUSDT": 65_000.0}})
        assert sup.evaluate(order(price=100.0)).decision == "allow"
        # The pusher says: SOL's price is unusable now (the same as {"SOLUSDT": null} in the mapping form).
        sup.report_prices(PriceSnapshot(clock.now(), {"BTCUSDT": 65_000.0}, ("SOLUSDT",)))
        r = sup.evaluate(order(price=100.0))
        assert r.reason_code is RC.PRICE_REFERENCE_STALE, f"SOL declared dropped, yet: {r.decision} {r.reason}"


# 2. A symbol the source never priced usably (dropped from the first answer, or the source down
#    since the start) is not "covered": opening orders pass on the caller's own reference_price ----


@pytest.fixture
def sup_hostile_from_start(sim, clock, tmp_path):
    healthy(sim)
    sim.set_prices({**MARKET, "SOLUSDT": "150"})  # SOL named, with a price that is not a number
    config = source_config(sim, tmp_path / "KILL", prices={"url": sim.url, **PRICES})
    with RiskSupervisor(config, clock=clock) as s:
        advance(s, clock, 0)
        yield s


def test_a_symbol_dropped_from_the_first_answer_does_not_pass_on_the_callers_word(sup_hostile_from_start):
    sup = sup_hostile_from_start
    # The poller logs prices_dropped effect="unpriced: opening orders block" for SOL; the gate:
    r = sup.evaluate(order(symbol="SOLUSDT", quantity=0.1, price=1_500.0, reference_price=1_500.0, stop_price=1_499.0))
    assert r.decision == "block", f"10x the market allowed on the caller's reference_price: {r.reason}"


def test_a_prices_source_down_since_the_start_does_not_open_the_collar_to_the_callers_word(sim, clock, tmp_path):
    healthy(sim)
    sim.set_prices(MARKET)
    sim.set_fault("prices", "500")
    config = source_config(sim, tmp_path / "KILL", prices={"url": sim.url, **PRICES})
    with RiskSupervisor(config, clock=clock) as sup:
        advance(sup, clock, 0)
        r = sup.evaluate(
            order(symbol="SOLUSDT", quantity=0.1, price=1_500.0, reference_price=1_500.0, stop_price=1_499.0)
        )
        assert r.decision == "block", f"prices source down, 10x the market allowed: {r.reason}"


# 3. ccxt: two markets map to one gate symbol; the last one iterated wins (an option's premium) ------


def test_ccxt_an_option_market_never_becomes_the_symbols_reference(clock):
    now = clock.now()
    exchange = FakeExchange(
        {"BTC/USDT:USDT": {"type": "swap"}, "BTC/USDT:USDT-250328-60000-C": {"type": "option"}},
        {
            "BTC/USDT:USDT": {"markPrice": 65_000.0, "timestamp": _ms(now)},
            "BTC/USDT:USDT-250328-60000-C": {"markPrice": 1_000.0, "timestamp": _ms(now)},
        },
    )
    answer = ExchangeTickers(exchange, ["BTCUSDT"], 5.0).fetch(now)
    cfg = _cfg()
    state = fresh_state(clock, account_state(equity=RICH))
    state.prices.apply(parse_prices(answer, cfg.symbols), clock.monotonic(), clock.now(), cfg.prices)
    r = decide(order(symbol="BTCUSDT", side="sell", quantity=0.01, price=950.0), state, cfg, clock)
    assert answer["prices"].get("BTCUSDT") != 1_000.0 and r.decision == "block", (answer, r.reason)


# 4. ccxt: a ticker stamped an hour in the future is taken as a fresh price -----------------------


def test_ccxt_a_ticker_stamped_far_in_the_future_is_not_a_fresh_price(clock):
    now = clock.now()
    exchange = FakeExchange(
        {"BTC/USDT": {}, "SOL/USDT": {}},
        {
            "BTC/USDT": {"last": 65_000.0, "timestamp": _ms(now)},
            "SOL/USDT": {"last": 150.0, "timestamp": _ms(now + timedelta(hours=1))},  # skew far beyond 5 s
        },
    )
    cfg = _cfg()
    snap = parse_prices(ExchangeTickers(exchange, ["BTCUSDT", "SOLUSDT"], 5.0).fetch(now), cfg.symbols)
    state = fresh_state(clock, account_state(equity=RICH))
    why, _ = state.prices.apply(snap, clock.monotonic(), clock.now(), cfg.prices)
    r = decide(order(symbol="SOLUSDT", quantity=0.1, price=150.0), state, cfg, clock)
    assert r.decision == "block", f"SOL priced from a ticker stamped 1 h ahead: {snap} {why!r} {r.reason}"


# 5. ccxt: an empty load_markets (a transient glitch) is cached for good ----------------------------


def test_ccxt_markets_are_read_again_after_an_answer_without_the_symbols(clock):
    answers = iter([{}, {"SOL/USDT": {}}, {"SOL/USDT": {}}])
    now = clock.now()
    exchange = FakeExchange(lambda: next(answers), {"SOL/USDT": {"last": 150.0, "timestamp": _ms(now)}})
    tickers = ExchangeTickers(exchange, ["SOLUSDT"], 5.0)
    with pytest.raises(ExchangeError):
        tickers.fetch(now)  # the exchange answered no markets this once
    results = []
    for _ in range(2):
        try:
            results.append(parse_prices(tickers.fetch(now)).prices)
        except ExchangeError as exc:
            results.append(str(exc))
    assert {"SOLUSDT": 150.0} in results, f"never asks for the markets again ({exchange.load_calls} call): {results}"


# 6. A move across an outage longer than spike_window_s is no spike -----------------------------


def test_a_fifty_percent_move_across_a_gap_longer_than_the_window_pauses(clock):
    cfg = _cfg()
    state = fresh_state(clock, account_state(equity=RICH))
    state.prices.apply(_snap(clock, 100.0), clock.monotonic(), clock.now(), cfg.prices)
    clock.advance(61.0)  # the source silent (stale: SOL blocked) a little longer than the window
    _, spikes = state.prices.apply(_snap(clock, 50.0), clock.monotonic(), clock.now(), cfg.prices)
    _refresh(state, clock)
    r = decide(order(price=50.0), state, cfg, clock)
    assert spikes and r.reason_code is RC.PRICE_SPIKE_PAUSE, f"-50% after the gap: {r.decision} {r.reason}"


# 7. spike_window_s shorter than poll_interval_s is accepted and disables the spike watch ------------


def test_a_spike_window_shorter_than_the_poll_interval_is_refused(clock):
    with pytest.raises(ConfigError) as refused:
        _cfg(poll_interval_s=1.0, spike_window_s=0.5)  # accepted, -50% in one poll was no spike
    assert any("prices.spike_window_s" in p for p in refused.value.problems), refused.value.problems


# 8. The 4096-mark cap silently shortens spike_window_s ------------------------------------------


def test_a_move_within_spike_window_s_pauses_however_often_the_source_is_polled(clock):
    cfg = _cfg(poll_interval_s=0.01, spike_window_s=60.0)  # accepted: 6,000 polls per window
    state = fresh_state(clock, account_state(equity=RICH))
    book = state.prices
    book.apply(_snap(clock, 100.0), clock.monotonic(), clock.now(), cfg.prices)
    for _ in range(4096):
        clock.advance(0.01)
        book.apply(_snap(clock, 105.0), clock.monotonic(), clock.now(), cfg.prices)
    clock.advance(0.01)  # ~41 s after the mark at 100: well within the 60 s window
    _, spikes = book.apply(_snap(clock, 111.0), clock.monotonic(), clock.now(), cfg.prices)
    assert spikes, "+11% within 41 s of a 60 s window is no spike: the mark at 100 was dropped by the cap"


# 9. /v1/state calls the prices source fresh and error-free while the gate refuses everything -------


def test_state_does_not_call_a_refused_prices_source_fresh(clock):
    cfg = make_config(prices={"url": "http://127.0.0.1:9", "max_age_s": 5.0, "symbols": ["SOLUSDT"]})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        ahead = (clock.now() + timedelta(seconds=600)).isoformat()  # beyond max_clock_skew_s: the gate refuses it
        sup.report_prices({"timestamp": ahead, "prices": {"SOLUSDT": 100.0}})
        assert sup.evaluate(order(price=100.0)).reason_code is RC.PRICE_REFERENCE_STALE
        source = sup.state()["sources"]["prices"]
        assert source["fresh"] is False or source["last_error"], f"/v1/state says: {source}"


# 10. A reloaded prices.max_plausible_usd is accepted but never reaches the poller ------------------


def test_a_reloaded_max_plausible_usd_applies_to_polled_prices(sim, clock, tmp_path):
    healthy(sim)
    sim.set_prices(MARKET)

    def text(max_plausible_usd: float) -> str:
        return toml_of(
            config_dict(
                risk_v3={"url": sim.url, "poll_interval_s": 2.0, "timeout_s": 0.3, "max_age_s": 6.0,
                         "max_signal_age_s": 900.0},
                ess={"url": sim.url, "kill_switch_file": str(tmp_path / "KILL"), "poll_interval_s": 0.5,
                     "timeout_s": 0.3, "max_age_s": 3.0},
                accounts={"snapshot_url": sim.url, "poll_interval_s": 5.0, "timeout_s": 0.3, "max_age_s": 60.0},
                state={"dir": str(tmp_path / "state")},
                prices={"url": sim.url, **PRICES, "max_plausible_usd": max_plausible_usd},
            )
        )  # fmt: skip

    path = Path(tmp_path / "riskgate.toml")
    path.write_text(text(1e12))
    with RiskSupervisor(load_config(path), clock=clock) as sup:
        advance(sup, clock, 0)
        btc = order(symbol="BTCUSDT", quantity=0.001, price=65_000.0)
        assert sup.evaluate(btc).decision == "allow"
        path.write_text(text(1_000.0))  # the operator: no price above 1,000 is plausible
        changed = sup.reload(path)["changed"]
        assert changed == ["prices.max_plausible_usd"]  # accepted, nothing refused
        advance(sup, clock, 1.0)
        advance(sup, clock, 1.0)
        r = sup.evaluate(order(symbol="BTCUSDT", quantity=0.001, price=65_000.0))
        assert r.decision == "block", f"65,000 still a fresh reference after max_plausible_usd=1000: {r.reason}"
