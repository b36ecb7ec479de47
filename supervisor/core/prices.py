"""The gate's own price reference ([prices], docs/prices.md), as the gate holds it.

Per symbol: the latest mark of the prices source and until when it counts as fresh,
the window's lowest and highest marks (the spike watch) and its mark of
`spike_window_s` ago (the collar over a period), and a pause after a spike. The gate
applies each `PriceSnapshot` under its lock (`PriceBook.apply`: the work and the
words are done there, once per price); a decision reads one entry
(`PriceBook.symbols[symbol]`): no formatting, no scan.

The window is kept in bounded memory whatever the rate prices come at: the lowest and
highest marks as monotonic queues (each entry at least window/1024 after the one
before it), the marks of the period one per window/256. The newest mark is never let
go, however old: a move across an outage longer than the window is still measured
from the last price seen.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from supervisor.config import PricesConfig
from supervisor.core.messages import PriceSnapshot

__all__ = ["PriceBook", "Spike", "SymbolPrice"]

_EXTREMES_PER_WINDOW = 1024  # the lowest/highest queues: at most one entry per window/1024
_MARKS_PER_WINDOW = 256  # the period's marks: one per window/256
_EPSILON_PCT = 1e-9  # a move of exactly spike_pct is no spike (float rounding aside)

Mark = tuple[float, float]  # (monotonic, price)


@dataclass(slots=True)
class SymbolPrice:
    """One symbol's reference. `low`/`high`: the collar's band, the mark now and the mark
    of `spike_window_s` ago (an order must be within the collar of both)."""

    price: float
    fresh_until: float  # monotonic: then stale (PRICE_REFERENCE_STALE)
    low: float
    high: float
    stamped: datetime  # the source's time of the price
    lows: deque[Mark] = field(default_factory=deque)  # rising prices: the window's lowest first
    highs: deque[Mark] = field(default_factory=deque)  # falling prices: the window's highest first
    marks: deque[Mark] = field(default_factory=deque)  # the period's marks, oldest first
    paused_until: float = -math.inf  # monotonic: opening orders block until then (PRICE_SPIKE_PAUSE)
    pause_why: str = ""
    paused_at: float = -math.inf  # monotonic: when the pause in force began
    priced_at: float = -math.inf  # monotonic: when the source priced it (its stamp, in this clock)


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
    accepted_at: float = -math.inf  # monotonic: the last snapshot that priced a symbol
    version: int = 0  # +1 whenever a price is taken or dropped (what a valuation was made from)
    refused: str = ""  # why the last snapshot priced nothing ("" when it priced something)

    def reconfigure(self, cfg: PricesConfig) -> None:
        """A reloaded max_age_s counts for the prices held too (a dropped one stays dropped), a
        reloaded spike_pause_s for the pauses in force."""
        for held in self.symbols.values():
            if held.fresh_until != -math.inf:
                held.fresh_until = held.priced_at + cfg.max_age_s
            if held.paused_until != -math.inf:
                # The spike watch as reloaded: off (spike_pause_s = 0) lifts a pause, a new length
                # counts from when it began.
                off = cfg.spike_pct is None or cfg.spike_pause_s <= 0
                held.paused_until = -math.inf if off else held.paused_at + cfg.spike_pause_s
        self.version += 1

    def apply(self, snap: PriceSnapshot, received: float, wall: datetime, cfg: PricesConfig) -> tuple[str, list[Spike]]:
        """Take up a snapshot sent at `received` (monotonic); `wall` is the time now. Returns
        why nothing was taken ("" when something was) and the spikes it showed."""
        spikes: list[Spike] = []
        refusals: list[str] = []
        stamps = snap.stamps or {}
        taken = 0
        for symbol, price in snap.prices.items():
            stamp = stamps.get(symbol, snap.timestamp)
            why = self._take(symbol, price, stamp, received, wall, cfg, spikes)
            if why:
                refusals.append(why)
            else:
                taken += 1
        for symbol in snap.dropped:
            held = self.symbols.get(symbol)
            if held is not None:
                held.fresh_until = -math.inf  # the source priced it unusably: no longer a reference
        self.version += 1
        if taken:
            self.accepted_at, self.refused = received, ""
        elif refusals:
            self.refused = refusals[0] + (f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else "")
        elif snap.dropped:
            self.refused = f"every price dropped as unusable: {', '.join(snap.dropped[:5])}"
        return ("" if taken else self.refused), spikes

    def _take(
        self,
        symbol: str,
        price: float,
        stamp: datetime,
        received: float,
        wall: datetime,
        cfg: PricesConfig,
        spikes: list[Spike],
    ) -> str:
        age = (wall - stamp).total_seconds()
        if age < -cfg.max_clock_skew_s:
            return f"{symbol}: priced {-age:.1f} s ahead > prices.max_clock_skew_s={cfg.max_clock_skew_s:g}"
        if age > cfg.max_age_s:
            return f"{symbol}: priced {age:.1f} s ago > prices.max_age_s={cfg.max_age_s:g}"
        held = self.symbols.get(symbol)
        if held is not None and stamp < held.stamped:
            return f"{symbol}: priced before the price held (a lagging source)"
        # Fresh for max_age_s from when the source priced it, not from when it arrived.
        fresh_until = received + cfg.max_age_s - max(0.0, age)
        if held is None:
            held = self.symbols[symbol] = SymbolPrice(price, fresh_until, price, price, stamp)
        window = cfg.spike_window_s
        cutoff = received - window
        lows, highs, marks = held.lows, held.highs, held.marks
        for queue in (lows, highs, marks):
            while len(queue) > 1 and queue[0][0] < cutoff:
                queue.popleft()  # the newest stays, however old: a move across an outage counts
        if lows:
            spike = _spike(symbol, lows[0][1], highs[0][1], price, received, cfg)
            if spike is not None:
                if received >= held.paused_until:  # a new pause (a spike within one extends it)
                    spikes.append(spike)
                    held.paused_at = received
                held.paused_until, held.pause_why = spike.until, spike.why
                lows.clear()  # the market goes on from its new level: the window starts again
                highs.clear()
                marks.clear()
        while lows and lows[-1][1] >= price:
            lows.pop()
        if not lows or received - lows[-1][0] >= window / _EXTREMES_PER_WINDOW:
            lows.append((received, price))
        while highs and highs[-1][1] <= price:
            highs.pop()
        if not highs or received - highs[-1][0] >= window / _EXTREMES_PER_WINDOW:
            highs.append((received, price))
        if not marks or received - marks[-1][0] >= window / _MARKS_PER_WINDOW:
            marks.append((received, price))
        ago = marks[0][1]
        held.price, held.fresh_until, held.stamped = price, fresh_until, stamp
        held.priced_at = received - max(0.0, age)
        held.low, held.high = (ago, price) if ago < price else (price, ago)
        return ""


def _spike(symbol: str, low: float, high: float, price: float, now: float, cfg: PricesConfig) -> Spike | None:
    pct = cfg.spike_pct
    if pct is None or cfg.spike_pause_s <= 0:  # spike_pause_s = 0: the spike watch is off
        return None
    up = (price / low - 1.0) * 100.0
    down = (1.0 - price / high) * 100.0
    if up <= pct + _EPSILON_PCT and down <= pct + _EPSILON_PCT:
        return None
    before, move = (low, up) if up >= down else (high, -down)
    until = now + cfg.spike_pause_s
    why = (
        f"{symbol} moved {move:+.1f}% ({before:g} -> {price:g}) within {cfg.spike_window_s:g}s"
        f" > prices.spike_pct={pct:g}: opening orders paused for {cfg.spike_pause_s:g}s"
    )
    return Spike(symbol, before, price, move, until, why)
