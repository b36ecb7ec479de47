"""The gate's own price reference ([prices], docs/prices.md), as the gate holds it.

Per symbol: the latest mark of the prices source and until when it counts as fresh,
the marks of the last `spike_window_s` (the collar over a period, the spike watch),
and a pause after a spike. The gate applies each `PriceSnapshot` under its lock
(`PriceBook.apply`: the work and the words are done there, once per price); a
decision reads one entry (`PriceBook.symbols[symbol]`): no formatting, no scan.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from supervisor.config import PricesConfig
from supervisor.core.messages import PriceSnapshot

__all__ = ["PriceBook", "Spike", "SymbolPrice"]

_MAX_WINDOW = 4096  # marks kept per symbol within the window (a source polled faster keeps the newest)


@dataclass(slots=True)
class SymbolPrice:
    """One symbol's reference. `low`/`high`: the collar's band, the mark now and the mark
    of `spike_window_s` ago (an order must be within the collar of both)."""

    price: float
    fresh_until: float  # monotonic: then stale (PRICE_REFERENCE_STALE)
    low: float
    high: float
    stamped: datetime  # the source's time of the price
    window: deque[tuple[float, float]] = field(default_factory=deque)  # (monotonic, price), oldest first
    paused_until: float = -math.inf  # monotonic: opening orders block until then (PRICE_SPIKE_PAUSE)
    pause_why: str = ""


@dataclass(frozen=True, slots=True)
class Spike:
    """A move beyond `spike_pct` within the window: the symbol is paused until `until`."""

    symbol: str
    before: float  # the mark in the window furthest from the new one
    after: float
    move_pct: float
    until: float  # monotonic
    why: str


@dataclass(slots=True)
class PriceBook:
    symbols: dict[str, SymbolPrice] = field(default_factory=dict)
    stamped: datetime | None = None  # the newest snapshot applied (an older one is a lagging replica)

    def apply(self, snap: PriceSnapshot, received: float, wall: datetime, cfg: PricesConfig) -> tuple[str, list[Spike]]:
        """Take up a snapshot sent at `received` (monotonic); `wall` is the time now. Returns
        why nothing was taken ("" when it was) and the spikes it showed."""
        age = (wall - snap.timestamp).total_seconds()
        if age < -cfg.max_clock_skew_s:
            return f"prices stamped {-age:.1f} s ahead > prices.max_clock_skew_s={cfg.max_clock_skew_s}", []
        if self.stamped is not None and snap.timestamp < self.stamped:
            return "prices stamped before the ones held (a lagging source): ignored", []
        self.stamped = snap.timestamp
        # Fresh for max_age_s from when the source priced it, not from when it arrived.
        fresh_until = received + cfg.max_age_s - max(0.0, age)
        window_s = cfg.spike_window_s
        spikes: list[Spike] = []
        for symbol, price in snap.prices.items():
            held = self.symbols.get(symbol)
            if held is None:
                held = self.symbols[symbol] = SymbolPrice(price, fresh_until, price, price, snap.timestamp)
            marks = held.window
            cutoff = received - window_s
            while marks and marks[0][0] < cutoff:
                marks.popleft()
            spike = _spike(symbol, marks, price, received, cfg) if marks else None
            if spike is not None:
                spikes.append(spike)
                held.paused_until, held.pause_why = spike.until, spike.why
                marks.clear()  # the market goes on from its new level: the window starts again
            if len(marks) >= _MAX_WINDOW:
                marks.popleft()
            marks.append((received, price))
            oldest = marks[0][1]
            held.price, held.fresh_until, held.stamped = price, fresh_until, snap.timestamp
            held.low, held.high = (oldest, price) if oldest < price else (price, oldest)
        for symbol in snap.dropped:
            held = self.symbols.get(symbol)
            if held is not None:
                held.fresh_until = -math.inf  # the source priced it unusably: no longer a reference
        return "", spikes


def _spike(symbol: str, marks: deque[tuple[float, float]], price: float, now: float, cfg: PricesConfig) -> Spike | None:
    pct = cfg.spike_pct
    if pct is None:
        return None
    low = min(p for _, p in marks)
    high = max(p for _, p in marks)
    up = (price / low - 1.0) * 100.0
    down = (1.0 - price / high) * 100.0
    if up <= pct and down <= pct:
        return None
    before, move = (low, up) if up >= down else (high, -down)
    until = now + cfg.spike_pause_s
    why = (
        f"{symbol} moved {move:+.1f}% ({before:g} -> {price:g}) within {cfg.spike_window_s:g}s"
        f" > prices.spike_pct={pct:g}: opening orders paused for {cfg.spike_pause_s:g}s"
    )
    return Spike(symbol, before, price, move, until, why)
