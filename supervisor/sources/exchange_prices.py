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

    def _markets(self) -> dict[str, str]:
        if self._unified is None:
            try:
                markets = self._exchange.load_markets()
            except Exception as exc:  # ccxt raises its own kinds, and anything from the network
                raise ExchangeError(f"load_markets: {type(exc).__name__}: {str(exc)[:200]}") from exc
            if not isinstance(markets, Mapping):  # a fake, or a ccxt that changed: said, never guessed
                raise ExchangeError(f"load_markets: expected a mapping, got {type(markets).__name__}")
            chosen: dict[str, str] = {}  # the gate's symbol -> ccxt's: a spot market over a derivative
            for unified in markets:
                if not isinstance(unified, str):
                    continue
                ours = gate_symbol(unified)
                if ours in self._symbols and (ours not in chosen or ":" in chosen[ours]):
                    chosen[ours] = unified
            self._unified = {unified: ours for ours, unified in chosen.items()}
        return self._unified

    def fetch(self, now: datetime) -> dict[str, Any]:
        """One call for every configured symbol, as a prices answer. A ticker older than
        prices.max_age_s, or with no usable price, is left out and its symbol named in
        `dropped` by the parser's rules (its price given as null); a ticker without a time
        is taken as of `now` (what the exchange answered now)."""
        unified = self._markets()
        if not unified:
            raise ExchangeError(f"none of the symbols {sorted(self._symbols)} is a market of this exchange")
        try:
            tickers = self._exchange.fetch_tickers(sorted(unified))
        except Exception as exc:
            raise ExchangeError(f"fetch_tickers: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not isinstance(tickers, Mapping):
            raise ExchangeError(f"fetch_tickers: expected a mapping, got {type(tickers).__name__}")
        prices: dict[str, float | None] = {}
        stamps: list[datetime] = []
        for symbol, ours in unified.items():
            ticker = tickers.get(symbol)
            if not isinstance(ticker, Mapping):
                prices[ours] = None
                continue
            price = _ticker_price(ticker)
            stamped = _ticker_time(ticker, now)
            if price is None or stamped is None or (now - stamped).total_seconds() > self._max_age_s:
                prices[ours] = None  # named as dropped: not priced
                continue
            prices[ours] = price
            stamps.append(stamped)
        stamp = min(stamps) if stamps else now
        return {"timestamp": stamp.isoformat(), "prices": prices}


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
