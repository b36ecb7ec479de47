"""The prices source through ccxt ([prices] exchange = "..."): a real ccxt exchange object
with its HTTP layer replaced, and fake exchange objects answering junk. Never the network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actors.price_poller import PricePollerActor
from supervisor.channels.gate_link import GateLink
from supervisor.clock import FakeClock
from supervisor.core.messages import PriceSnapshot
from supervisor.sources.exchange_prices import ExchangeError, ExchangeTickers, gate_symbol, open_exchange
from supervisor.sources.upstream import parse_prices
from tests.helpers import make_config

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MS = int(NOW.timestamp() * 1000)
SYMBOLS = {"SOLUSDT", "BTCUSDT"}


class FakeExchange:
    def __init__(self, markets, tickers):
        self.markets, self.tickers, self.asked = markets, tickers, []

    def load_markets(self):
        if isinstance(self.markets, Exception):
            raise self.markets
        return self.markets

    def fetch_tickers(self, symbols):
        self.asked.append(symbols)
        if isinstance(self.tickers, Exception):
            raise self.tickers
        return self.tickers


def read(exchange, max_age_s: float = 5.0) -> PriceSnapshot:
    return parse_prices(ExchangeTickers(exchange, SYMBOLS, max_age_s).fetch(NOW), SYMBOLS)


def test_a_real_ccxt_exchange_object_answers_through_its_own_parsing():
    ccxt = pytest.importorskip("ccxt")
    from tests.supervisor.integrations.test_execution_ccxt import MARKET

    exchange = ccxt.binance({"enableRateLimit": False})
    exchange.set_markets([MARKET])
    exchange.load_markets = lambda *a, **k: exchange.markets
    urls = []

    def fetch(url, method="GET", headers=None, body=None):
        urls.append(url)
        return [{"symbol": "SOLUSDT", "lastPrice": "150.5", "closeTime": MS - 1000, "openTime": MS - 86_400_000}]

    exchange.fetch = fetch
    snap = read(exchange)
    assert snap.prices == {"SOLUSDT": 150.5}
    assert snap.stamps == {"SOLUSDT": NOW - timedelta(seconds=1)}  # the ticker's own time, not the fetch's
    assert len(urls) == 1 and "ticker/24hr" in urls[0]  # one call for every symbol


def test_a_spot_market_is_chosen_over_a_derivative_and_named_as_the_gate_does():
    markets = {"SOL/USDT:USDT": {}, "SOL/USDT": {}, "BTC/USDT:USDT": {}, "DOGE/USDT": {}}
    tickers = {
        "SOL/USDT": {"last": 150.0, "timestamp": MS},
        "BTC/USDT:USDT": {"markPrice": 65_000.0, "last": 1.0, "timestamp": MS},
    }
    exchange = FakeExchange(markets, tickers)
    assert read(exchange).prices == {"SOLUSDT": 150.0, "BTCUSDT": 65_000.0}  # a derivative's mark price
    assert exchange.asked == [["BTC/USDT:USDT", "SOL/USDT"]]
    assert gate_symbol("BTC/USDT:USDT") == "BTCUSDT"


@pytest.mark.parametrize(
    "ticker",
    [
        None,
        "150",
        {"last": "150", "timestamp": MS},  # a string is no price
        {"last": -1.0, "timestamp": MS},
        {"last": float("nan"), "timestamp": MS},
        {"last": True, "timestamp": MS},
        {"last": 150.0, "timestamp": MS - 60_000},  # a minute old: stale
        {"last": 150.0, "timestamp": MS // 1000},  # seconds, not ms: 1970, stale
        {"last": 150.0, "timestamp": "yesterday"},
        {"last": 150.0, "timestamp": 1e300},
    ],
    ids=repr,
)
def test_a_junk_ticker_unprices_its_symbol_only(ticker):
    exchange = FakeExchange({"SOL/USDT": {}, "BTC/USDT": {}}, {"SOL/USDT": ticker, "BTC/USDT": {"last": 1.0}})
    snap = read(exchange)
    assert "SOLUSDT" not in snap.prices and "SOLUSDT" in snap.dropped
    assert snap.prices == {"BTCUSDT": 1.0}  # a ticker without a time is taken as of the fetch


@pytest.mark.parametrize(
    ("markets", "tickers", "said"),
    [
        (RuntimeError("exchange down"), {}, "load_markets: RuntimeError"),
        (["SOL/USDT"], {}, "expected a mapping"),
        ({"DOGE/USDT": {}}, {}, "none of the symbols"),
        ({"SOL/USDT": {}}, TimeoutError("slow"), "fetch_tickers: TimeoutError"),
        ({"SOL/USDT": {}}, [1, 2], "expected a mapping"),
    ],
)
def test_an_exchange_that_cannot_answer_says_why(markets, tickers, said):
    with pytest.raises(ExchangeError, match=said):
        read(FakeExchange(markets, tickers))


def test_an_unknown_exchange_id_is_refused_by_name():
    pytest.importorskip("ccxt")
    with pytest.raises(ExchangeError, match="no exchange 'nosuchexchange'"):
        open_exchange("nosuchexchange", 1.0)


class Sink:
    def __init__(self):
        self.posted = []

    def post(self, message, received):
        self.posted.append(message)


def test_the_poller_pushes_what_the_exchange_answered_and_nothing_when_it_fails():
    clock = FakeClock(NOW)
    sink = Sink()
    config = make_config(prices={"exchange": "binance", "symbols": ["SOLUSDT"]})
    exchange = FakeExchange({"SOL/USDT": {}}, {"SOL/USDT": {"last": 150.0, "timestamp": MS}})
    ref = PricePollerActor.start(config, clock, GateLink(clock, sink), tickers=ExchangeTickers(exchange, SYMBOLS, 5.0))
    try:
        snap = ref.proxy().poll().get(timeout=10)
        assert snap.prices == {"SOLUSDT": 150.0} and sink.posted == [snap]
        exchange.tickers = RuntimeError("429 Too Many Requests")
        assert ref.proxy().poll().get(timeout=10) is None
        assert sink.posted == [snap]  # nothing pushed: the gate's price ages and blocks
        assert ref.proxy().failure_cause().get(timeout=10) == "exchange"  # logged once with its detail
    finally:
        ref.stop()
