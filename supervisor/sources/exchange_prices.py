"""Public tickers through ccxt as a prices source ([prices] exchange = "binance").

ccxt is an optional extra (`pip install riskgate[exchanges]`): imported only when a
config names an exchange. `ExchangeTickers.fetch` answers in the prices contract
(docs/prices.md), so that a ticker is read by the same parser, with the same
refusals, as a polled `/prices` answer. Tests give a fake exchange object: never
the network.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from supervisor.core.values import plain_float
from supervisor.errors import RiskgateError

__all__ = ["Exchange", "ExchangeError", "ExchangeTickers", "gate_symbol", "open_exchange"]


class ExchangeError(RiskgateError):
    """The exchange (or ccxt) could not be asked, or answered nothing usable."""


class Exchange(Protocol):
    """The part of a ccxt exchange object used here."""

    def load_markets(self) -> Any: ...
    def fetch_tickers(self, symbols: list[str]) -> Any: ...


def gate_symbol(unified: str) -> str:
    """The gate's name of a ccxt unified symbol: BTC/USDT and BTC/USDT:USDT are BTCUSDT
    (as an order naming BTC/USDT is read)."""
    return unified.split(":", 1)[0].replace("/", "")


def open_exchange(exchange_id: str, timeout_s: float) -> Exchange:
    """A ccxt exchange object for public data (no keys), or `ExchangeError` saying why not."""
    try:
        ccxt = importlib.import_module("ccxt")
    except ImportError as exc:
        raise ExchangeError(f'prices.exchange = "{exchange_id}" needs ccxt: pip install "riskgate[exchanges]"') from exc
    cls = getattr(ccxt, exchange_id, None)
    if cls is None or exchange_id not in getattr(ccxt, "exchanges", ()):
        raise ExchangeError(f"prices.exchange: ccxt knows no exchange {exchange_id!r}")
    exchange: Exchange = cls({"enableRateLimit": True, "timeout": int(timeout_s * 1000)})
    return exchange


class ExchangeTickers:
    """The configured symbols' prices from one exchange's public tickers."""

    def __init__(self, exchange: Exchange, symbols: Iterable[str], max_age_s: float) -> None:
        self._exchange = exchange
        self._symbols = frozenset(symbols)
        self._max_age_s = max_age_s
        self._unified: dict[str, str] | None = None  # ccxt symbol -> the gate's, once the markets are read

    def reconfigure(self, symbols: Iterable[str], max_age_s: float) -> None:
        """A reloaded config: its symbols (the markets are matched again at the next fetch)."""
        symbols = frozenset(symbols)
        if symbols != self._symbols:
            self._symbols, self._unified = symbols, None
        self._max_age_s = max_age_s

    def _markets(self) -> dict[str, str]:
        if self._unified is not None:
            return self._unified
        try:
            markets = self._exchange.load_markets()
        except Exception as exc:  # ccxt raises its own kinds, and anything from the network
            raise ExchangeError(f"load_markets: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not isinstance(markets, Mapping):  # a fake, or a ccxt that changed: said, never guessed
            raise ExchangeError(f"load_markets: expected a mapping, got {type(markets).__name__}")
        # The gate's symbol -> ccxt's: a spot market first, else a perpetual swap; never a dated
        # future or an option (their prices are not the market's); two alike for one symbol: none.
        found: dict[str, dict[int, list[str]]] = {}
        for unified, market in markets.items():
            rank = _rank(unified, market)
            if rank is None:
                continue
            ours = gate_symbol(unified)
            if ours in self._symbols:
                found.setdefault(ours, {}).setdefault(rank, []).append(unified)
        chosen: dict[str, str] = {}
        for ours, by_rank in found.items():
            best = by_rank[min(by_rank)]
            if len(best) == 1:
                chosen[best[0]] = ours
        if chosen:  # an answer without any of them is not kept: the markets are read again next time
            self._unified = chosen
        return chosen

    def fetch(self, now: datetime) -> dict[str, Any]:
        """One call for every configured symbol, as a prices answer, each price with its
        ticker's own time (a ticker without one: `now`, what the exchange answered now). A
        ticker older than prices.max_age_s or without a usable price is named with a null
        price (the parser drops it: its symbol is unpriced); one stamped ahead is left to
        the gate, which refuses it beyond prices.max_clock_skew_s."""
        unified = self._markets()
        if not unified:
            raise ExchangeError(f"none of the symbols {sorted(self._symbols)} is a spot or perpetual market here")
        try:
            tickers = self._exchange.fetch_tickers(sorted(unified))
        except Exception as exc:
            raise ExchangeError(f"fetch_tickers: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not isinstance(tickers, Mapping):
            raise ExchangeError(f"fetch_tickers: expected a mapping, got {type(tickers).__name__}")
        prices: dict[str, Any] = {}
        for symbol, ours in unified.items():
            ticker = tickers.get(symbol)
            price = _ticker_price(ticker) if isinstance(ticker, Mapping) else None
            stamped = _ticker_time(ticker, now) if isinstance(ticker, Mapping) else None
            if price is None or stamped is None or (now - stamped).total_seconds() > self._max_age_s:
                prices[ours] = None  # named as dropped: not priced
                continue
            prices[ours] = {"price": price, "timestamp": stamped.isoformat()}
        return {"timestamp": now.isoformat(), "prices": prices}


def _rank(unified: Any, market: Any) -> int | None:
    """0 for a spot market, 1 for a perpetual swap, None for anything else (dated, options)."""
    if not isinstance(unified, str) or "/" not in unified:
        return None
    kind = market.get("type") if isinstance(market, Mapping) else None
    _, _, settle = unified.partition(":")
    if not settle:
        return 0 if kind in (None, "spot") else None
    if "-" in settle or kind not in (None, "swap"):
        return None  # BTC/USDT:USDT-250328 (a future), BTC/USDT:USDT-250328-60000-C (an option)
    return 1


def _ticker_price(ticker: Mapping[str, Any]) -> float | None:
    """A derivative's mark price, else the last trade, else the close."""
    for key in ("markPrice", "last", "close"):
        price = plain_float(ticker.get(key))
        if price is not None and price > 0:
            return price
    return None


def _ticker_time(ticker: Mapping[str, Any], now: datetime) -> datetime | None:
    raw = ticker.get("timestamp")
    if raw is None:
        return now
    ms = plain_float(raw)
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000.0, UTC)
    except (OverflowError, OSError, ValueError):
        return None
