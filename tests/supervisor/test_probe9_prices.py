"""Probe 9 of the gate's price reference ([prices]): each test fails on a real problem.

No sleeps: FakeClock (time moves by `clock.advance`); prices pushed through
`report_prices` (the same parse and the same gate message as a poll), or events /
bounded waits on real conditions.
"""

from __future__ import annotations

from pathlib import Path

from supervisor import RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import load_config
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.test_probe_config import toml_of
from tests.helpers import config_dict, feed, make_config, order

RICH = 1e7


def _prices(sup: RiskSupervisor, clock: FakeClock, **prices: float) -> None:
    sup.report_prices({"timestamp": clock.now().isoformat(), "prices": prices})


# 1. A restart forgets a spike pause (and the last mark): the pause is journaled
#    (`price_spike_pause`, with its `until`) but never recalled. A process restarted 1 s
#    after a +30 % spike, whose first poll sees the spiked price, lets opening orders on
#    the symbol through at once, 119 s before the pause ends.


def test_a_restart_right_after_a_spike_keeps_the_symbol_paused(clock, tmp_path):
    cfg = make_config(
        prices={"url": "http://127.0.0.1:9", "spike_pct": 10.0, "spike_pause_s": 120.0},
        state={"dir": str(tmp_path / "state")},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=100.0)
        clock.advance(1.0)
        _prices(sup, clock, SOLUSDT=130.0)
        r = sup.evaluate(order(symbol="SOLUSDT", price=130.0, order_id="before"))
        assert r.reason_code is RC.PRICE_SPIKE_PAUSE
        sup.flush_journal()
    clock.advance(1.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:  # restarted (a deploy, a crash)
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=130.0)  # the first poll after the restart
        r = sup.evaluate(order(symbol="SOLUSDT", price=130.0, order_id="after"))
        row = sup.state()["prices"]["SOLUSDT"]
        assert r.reason_code is RC.PRICE_SPIKE_PAUSE, (
            f"2 s into a 120 s spike pause, after a restart: {r.decision} {r.reason_code}; /v1/state {row}"
        )


def test_a_move_across_a_restart_is_measured_from_the_last_price_seen(clock, tmp_path):
    """docs/prices.md: 'The last mark is never forgotten, however old: a move across an outage
    ... is measured from the last price seen'. A restart is such an outage: SOL at 100 before,
    150 at the first poll after it (+50 %, spike_pct 10): no pause."""
    cfg = make_config(
        prices={"url": "http://127.0.0.1:9", "spike_pct": 10.0, "spike_pause_s": 120.0},
        state={"dir": str(tmp_path / "state")},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=100.0)
        sup.flush_journal()
    clock.advance(2.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=150.0)
        r = sup.evaluate(order(symbol="SOLUSDT", price=150.0, order_id="after"))
        assert r.reason_code is RC.PRICE_SPIKE_PAUSE, f"+50 % across a 2 s restart: {r.decision} {r.reason_code}"


# 2. GET /prices (and report_prices) reads a ccxt-style key by cutting it at ':' - so a dated
#    future or an option ("BTC/USDT:USDT-250328-60000-C", its premium) becomes BTCUSDT's price,
#    the very markets docs/upstream.md says are never a symbol's reference through ccxt; and two
#    keys naming one symbol are not refused ("two markets alike for one symbol leave it
#    unpriced" through ccxt): the last one silently wins. A source that lists tickers as ccxt
#    names them (spot, then its options) sets BTC at 500 with the market at 65,000, and a
#    fat-finger sell at 520 (99 % below the market) passes the collar.


def test_an_option_key_in_a_prices_answer_never_becomes_the_symbols_price(clock):
    cfg = make_config(prices={"url": "http://127.0.0.1:9"})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        sup.report_prices(
            {
                "timestamp": clock.now().isoformat(),
                "prices": {"BTCUSDT": 65_000.0, "ETHUSDT": 3_500.0, "SOLUSDT": 150.0,
                           "BTC/USDT:USDT-250328-60000-C": 500.0},
            }
        )  # fmt: skip
        held = sup.state()["prices"]["BTCUSDT"]["price"]
        r = sup.evaluate(order(symbol="BTCUSDT", side="sell", quantity=0.01, price=520.0, order_id="ff"))
        assert held == 65_000.0 and r.reason_code is RC.PRICE_OUT_OF_COLLAR, (
            f"BTCUSDT held at {held} (the option's premium); a sell at 520 with the market at 65,000:"
            f" {r.decision} {r.reason_code}"
        )


# 3. Through ccxt the poll has no deadline of its own: prices.timeout_s is handed to ccxt as
#    its per-request `timeout` (each socket operation, as httpx's), which a trickling or stuck
#    exchange never trips (supervisor/sources/http.py gives GET /prices a total deadline for
#    exactly that reason; the ccxt path has none). An exchange object that hangs in
#    fetch_tickers holds the price poller's thread for ever: the Poll is never answered, the
#    actor stops answering pings, supervision gives it up and starts another on the *same*
#    exchange object (wiring.py builds `tickers` once), which hangs again: a restart loop
#    leaking one stuck thread per restart.


class _HangingExchange:
    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.entered = threading.Event()

    def load_markets(self):
        return {"SOL/USDT": {"type": "spot"}}

    def fetch_tickers(self, symbols):
        self.entered.set()
        self.release.wait()  # a stuck exchange (released at the test's end)
        return {}


class _Sink:
    def __init__(self) -> None:
        self.posted: list[object] = []

    def post(self, message, received):
        self.posted.append(message)


def test_a_hanging_exchange_does_not_hold_a_price_poll_beyond_prices_timeout_s():
    import pykka

    from actors.messages import Poll
    from actors.price_poller import PricePollerActor
    from supervisor.channels.gate_link import GateLink
    from supervisor.sources.exchange_prices import ExchangeTickers

    clock = FakeClock()
    config = make_config(prices={"exchange": "binance", "symbols": ["SOLUSDT"], "timeout_s": 0.1})
    exchange = _HangingExchange()
    ref = PricePollerActor.start(
        config, clock, GateLink(clock, _Sink()), tickers=ExchangeTickers(exchange, {"SOLUSDT"}, 5.0)
    )
    try:
        answer = ref.ask(Poll(), block=False)
        assert exchange.entered.wait(5.0)
        try:
            answer.get(timeout=config.prices.timeout_s + 1.0)  # a deadline of 0.1 s, and 1 s of slack
            bounded = True
        except pykka.Timeout:
            bounded = False
        assert bounded, (
            f"a poll through ccxt still running {config.prices.timeout_s + 1.0:g}s in (prices.timeout_s=0.1)"
        )
    finally:
        exchange.release.set()
        ref.stop(timeout=5)


# 4. A reload of the spike watch never reaches a pause in force. docs/prices.md: "A reload
#    applies every key but url, exchange, poll_interval_s and timeout_s", and spike_pause_s = 0
#    is "the spike watch is off". An operator who turns the watch off (a bad tick paused a
#    symbol for an hour) still has it paused for the rest of the hour, the reason quoting the
#    old settings; nothing else lifts a pause (no control; only a restart, problem 1).


def test_a_reload_turning_the_spike_watch_off_lifts_the_pause_in_force(clock, tmp_path):
    def text(pause_s: float) -> str:
        return toml_of(config_dict(prices={"url": "http://127.0.0.1:9", "spike_pct": 10.0, "spike_pause_s": pause_s}))

    path = Path(tmp_path / "riskgate.toml")
    path.write_text(text(3_600.0))
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=100.0)
        clock.advance(1.0)
        _prices(sup, clock, SOLUSDT=130.0)  # a bad tick: paused for an hour
        path.write_text(text(0.0))
        assert sup.reload(path)["changed"] == ["prices.spike_pause_s"]
        clock.advance(10.0)
        feed(sup, RICH)
        _prices(sup, clock, SOLUSDT=130.0)
        r = sup.evaluate(order(symbol="SOLUSDT", price=130.0, order_id="after-reload"))
        assert r.reason_code is not RC.PRICE_SPIKE_PAUSE, (
            f"spike_pause_s reloaded to 0 (the watch off) 10 s ago: {r.decision} {r.reason_code}: {r.reason}"
        )
