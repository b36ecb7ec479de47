"""AlertBook: trailing windows and episodes over the rules.

The alerting actor hands it one `Observation` per tick. It keeps what the
rates need (the gate's cumulative decision counters for a minute, restart
counts for ten, journal drops for five), runs the rules, and returns only the
transitions: one `firing` when a condition starts, one `resolved` when it
clears, nothing while it lasts. So an episode is announced once however often
it is looked at. Pure: no I/O, no threads; the caller's observation carries
the time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from supervisor.alerts.rules import DROP_WINDOW_S, Alert, Observation, Transition, Windows, evaluate_rules
from supervisor.config import AlertsConfig

__all__ = ["RATE_WINDOW_S", "RESTART_WINDOW_S", "AlertBook"]

RATE_WINDOW_S = 60.0  # block rates are counted over the trailing minute
RESTART_WINDOW_S = 600.0  # actor restarts over the trailing ten minutes

_K = TypeVar("_K")


def _base(samples: deque[tuple[float, Mapping[_K, int]]], now: float, window_s: float) -> Mapping[_K, int]:
    """The newest sample at least `window_s` old (else the oldest): what to count from."""
    base: Mapping[_K, int] | None = None
    for when, counts in samples:
        if now - when < window_s:
            return counts if base is None else base
        base = counts
    return base if base is not None else {}


def _increase(current: Mapping[_K, int], base: Mapping[_K, int]) -> dict[_K, int]:
    """Per key, how much a cumulative counter grew (a counter that went back counts nothing)."""
    out: dict[_K, int] = {}
    for key, n in current.items():
        grown = n - base.get(key, 0) if isinstance(n, int) else 0
        if grown > 0:
            out[key] = grown
    return out


def _trim(samples: deque[tuple[float, Mapping[_K, int]]], now: float, window_s: float) -> None:
    """Keep one sample at least `window_s` old (the base) and everything newer."""
    while len(samples) >= 2 and now - samples[1][0] >= window_s:
        samples.popleft()


@dataclass(slots=True)
class _Episode:
    alert: Alert
    started_at: datetime


class AlertBook:
    """Keeps the trailing windows and the active episodes. `update(obs)` returns
    the transitions since the last update: a `firing` per new alert, a
    `resolved` per alert that cleared (ordered: resolved first, then firing).
    Not thread safe: one owner (the alerting actor) calls it."""

    def __init__(self, config: AlertsConfig, started: float) -> None:
        """`started`: the monotonic time the gate started (the startup grace counts from it)."""
        self.config = config
        self._grace_end = started + config.startup_grace_s
        self._blocks: deque[tuple[float, Mapping[tuple[str, str, str], int]]] = deque()
        self._restarts: deque[tuple[float, Mapping[str, int]]] = deque()
        self._dropped_seen: int | None = None
        self._drops: deque[tuple[float, int]] = deque()  # (when, how many) journal drops seen
        self._active: dict[str, _Episode] = {}

    @property
    def active(self) -> dict[str, Alert]:
        return {key: e.alert for key, e in self._active.items()}

    def windows(self, obs: Observation) -> Windows:
        now = obs.monotonic
        self._blocks.append((now, dict(obs.decisions)))
        _trim(self._blocks, now, RATE_WINDOW_S)
        self._restarts.append((now, dict(obs.restarts)))
        _trim(self._restarts, now, RESTART_WINDOW_S)
        by_account: dict[str, int] = {}
        by_code: dict[str, int] = {}
        grown = _increase(obs.decisions, _base(self._blocks, now, RATE_WINDOW_S))
        for (decision, code, account), n in grown.items():
            if decision == "block":
                by_account[account] = by_account.get(account, 0) + n
                by_code[code] = by_code.get(code, 0) + n
        dropped = obs.journal_dropped if isinstance(obs.journal_dropped, int) else 0
        if self._dropped_seen is not None and dropped > self._dropped_seen:
            self._drops.append((now, dropped - self._dropped_seen))
        self._dropped_seen = max(dropped, self._dropped_seen or 0)
        while self._drops and now - self._drops[0][0] >= DROP_WINDOW_S:
            self._drops.popleft()
        return Windows(
            grace_end=self._grace_end,
            blocks_by_account=by_account,
            blocks_by_code=by_code,
            restarts_by_actor=_increase(obs.restarts, _base(self._restarts, now, RESTART_WINDOW_S)),
            journal_dropped_recently=sum(n for _, n in self._drops),
        )

    def update(self, obs: Observation) -> list[Transition]:
        now = obs.wall
        current = evaluate_rules(obs, self.windows(obs), self.config)
        out: list[Transition] = []
        for key in [k for k in self._active if k not in current]:
            ended = self._active.pop(key)
            out.append(Transition("resolved", ended.alert, ended.started_at, now))
        for key, alert in current.items():
            episode = self._active.get(key)
            if episode is None:
                self._active[key] = _Episode(alert, now)
                out.append(Transition("firing", alert, now, now))
            else:
                episode.alert = alert  # the resolved message shows the latest figures
        return out
