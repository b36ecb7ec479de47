"""The alert rules: what is wrong now, and what changed since the last look.

Pure: no I/O, no threads, no clock of its own. Each rule is a function of an
`Observation` (a snapshot of what the gate and its sources show, with the
time it was taken), the `Windows` derived from earlier observations (blocks
in the last minute, restarts in the last ten) and the `[alerts]` limits, and
yields the `Alert`s that hold now. `AlertBook` (book.py) turns them into
episodes.

Unknown is never taken for healthy: a source whose age is missing (after the
startup grace), not a number, negative or infinite counts as stale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from supervisor.config import AlertsConfig

__all__ = [
    "DROP_WINDOW_S",
    "RULES",
    "AccountFigures",
    "Alert",
    "Observation",
    "PriceReading",
    "SourceReading",
    "Transition",
    "Windows",
    "evaluate_rules",
]

DROP_WINDOW_S = 300.0  # a journal record dropped within this keeps journal_failing firing

Detail = Mapping[str, str | int | float | bool | None]


@dataclass(frozen=True, slots=True)
class SourceReading:
    name: str  # "risk_v3", "ess", "account:NAME"
    age_s: float | None  # None: no state yet
    max_age_s: float


@dataclass(frozen=True, slots=True)
class PriceReading:
    """One symbol the prices source covers ([prices]): fresh, and a spike pause (why) if any."""

    symbol: str
    fresh: bool
    pause: str | None = None  # why it is paused, while it is


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """One account's PnL against its profile's limits (percent; limits are negative)."""

    name: str
    day_pnl_pct: float | None
    week_pnl_pct: float | None
    drawdown_pct: float | None  # below the week's equity peak, positive
    max_daily_loss_pct: float
    max_weekly_loss_pct: float
    max_drawdown_pct: float | None


@dataclass(frozen=True, slots=True)
class Observation:
    """What the running gate shows at one moment (gathered off the decision path)."""

    monotonic: float
    wall: datetime
    sources: tuple[SourceReading, ...] = ()
    ess_active: bool | None = None  # None: no ESS state, or a source's reading is unknown
    ess_reason: str = ""
    ess_halting: tuple[str, ...] = ()  # the ESS readings (sources) that halt
    reduce_only: str | None = None  # while an operator's reduce-only halt holds: by whom and why
    gate_alive: bool = True
    journal_problem: str | None = None
    journal_blocking: str | None = None
    journal_dropped: int = 0
    unusable: tuple[str, ...] = ()  # fresh by age, yet blocking: "risk_v3: Risk v3 signal evaluated 3600s ago ..."
    accounts: tuple[AccountFigures, ...] = ()
    restarts: Mapping[str, int] = field(default_factory=dict)  # actor -> restarts since start
    decisions: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (decision, code, account) -> n
    prices: tuple[PriceReading, ...] = ()


@dataclass(frozen=True, slots=True)
class Windows:
    """What the book derives from its trailing samples, for the rules."""

    grace_end: float  # monotonic: until then a source with no state yet is not stale
    blocks_by_account: Mapping[str, int] = field(default_factory=dict)
    blocks_by_code: Mapping[str, int] = field(default_factory=dict)
    restarts_by_actor: Mapping[str, int] = field(default_factory=dict)
    journal_dropped_recently: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    """A condition that holds now. `key` names the episode (`source_stale:risk_v3`)."""

    key: str
    rule: str
    severity: Literal["critical", "warning"]
    summary: str
    detail: Detail = field(default_factory=dict)
    recovered: str = ""  # what the resolved message says (the cause is gone: not the failure's figures)


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert started (`firing`) or cleared (`resolved`)."""

    state: Literal["firing", "resolved"]
    alert: Alert
    started_at: datetime
    at: datetime

    @property
    def resolved_at(self) -> datetime | None:
        return self.at if self.state == "resolved" else None

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.at - self.started_at).total_seconds())


# -- the rules: each a pure function of the observation, the windows and the limits ----------
Rule = Callable[[Observation, Windows, AlertsConfig], Iterable[Alert]]


def _number(value: object) -> float | None:
    """A finite float, or None for anything else (NaN, inf, bool, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def stale_for(src: SourceReading, now: float, grace_end: float) -> float | None:
    """How long `src` has been stale (inf when its age cannot be trusted), or None
    when it is fresh, or has no state yet within the startup grace."""
    if src.age_s is None:
        return None if now < grace_end else now - grace_end
    age, limit = _number(src.age_s), _number(src.max_age_s)
    if age is None or limit is None or age < 0.0:
        return math.inf  # an age that is not one: stale, never hidden
    return None if age <= limit else age - limit


def _stale(obs: Observation, w: Windows) -> list[tuple[SourceReading, float]]:
    found = [(src, stale_for(src, obs.monotonic, w.grace_end)) for src in obs.sources]
    return [(src, s) for src, s in found if s is not None]


def _describe(src: SourceReading) -> str:
    if src.age_s is None:
        return f"{src.name}: no state yet"
    age, limit = _number(src.age_s), _number(src.max_age_s)
    shown = "unknown" if age is None else f"{age:.1f} s"
    return f"{src.name}: age {shown} > max_age_s {'unknown' if limit is None else f'{limit:g} s'}"


def rule_source_stale(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    for src, stale_s in _stale(obs, w):
        if stale_s >= cfg.source_stale_s:
            yield Alert(
                f"source_stale:{src.name}",
                "source_stale",
                "critical",
                f"source stale for {cfg.source_stale_s:g} s or more: {_describe(src)}",
                {"source": src.name, "age_s": _number(src.age_s), "max_age_s": _number(src.max_age_s)},
                f"source {src.name} is fresh again",
            )


def rule_fail_closed(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    """The gate blocks orders for want of state: the same reasons as `/readyz`."""
    why = [] if obs.gate_alive else ["gate: not running"]
    why += [_describe(src) for src, _ in _stale(obs, w)]
    if obs.ess_active is None and any(s.name == "ess" and s.age_s is not None for s in obs.sources):
        why.append(f"ess: state unknown ({obs.ess_reason or 'no reading'})")
    why += obs.unusable
    if obs.journal_blocking is not None:
        why.append(f"journal: {obs.journal_blocking}")
    if why:
        yield Alert(
            "fail_closed",
            "fail_closed",
            "critical",
            "gate failing closed: " + "; ".join(why),
            {"reasons": "; ".join(why)},
            "gate no longer failing closed: every source fresh, the journal writing",
        )


def rule_halt(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    if obs.ess_active is True:
        halting = ", ".join(obs.ess_halting) or "unknown"
        reason = obs.ess_reason or "no reason given"
        # The reason names each halting source already ("kill_switch_file: ..."): said once.
        named = obs.ess_halting and all(f"{h}:" in reason for h in obs.ess_halting)
        yield Alert(
            "halt",
            "halt",
            "critical",
            f"trading halted by {reason}" if named else f"trading halted by {halting}: {reason}",
            {"halted_by": halting, "reason": obs.ess_reason},
            f"trading no longer halted by {halting}",
        )


def rule_reduce_only(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    """An operator's reduce-only halt: no ESS source (`halt` never sees it), yet every order
    that grows a position blocks."""
    if obs.reduce_only is not None:
        yield Alert(
            "reduce_only",
            "reduce_only",
            "warning",
            f"reduce-only {obs.reduce_only}: orders that grow a position block (REDUCE_ONLY_MODE)",
            {"reason": obs.reduce_only},
            "reduce-only lifted: orders that grow a position trade again",
        )


def rule_block_rate(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    for account, n in sorted(w.blocks_by_account.items()):
        limit = cfg.block_rate_per_account_per_min
        if n > limit:
            yield Alert(
                f"block_rate:account:{account}",
                "block_rate",
                "warning",
                f"account {account}: {n} blocked orders in the last minute (more than {limit})",
                {"account": account, "blocks_last_minute": n, "limit_per_min": limit},
                f"account {account}: blocked orders back at {limit} a minute or fewer",
            )
    for code, n in sorted(w.blocks_by_code.items()):
        limit = cfg.block_rate_per_reason_per_min
        if n > limit:
            yield Alert(
                f"block_rate:code:{code}",
                "block_rate",
                "warning",
                f"{code}: {n} blocked orders in the last minute (more than {limit})",
                {"reason_code": code, "blocks_last_minute": n, "limit_per_min": limit},
                f"{code}: blocked orders back at {limit} a minute or fewer",
            )


def rule_loss_limit(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    """As the gate's checks decide: PnL at or below the (negative) limit; drawdown above its limit."""
    for a in obs.accounts:
        for period, pct, limit in (
            ("daily", a.day_pnl_pct, a.max_daily_loss_pct),
            ("weekly", a.week_pnl_pct, a.max_weekly_loss_pct),
        ):
            value = None if isinstance(pct, bool) or not isinstance(pct, int | float) or math.isnan(pct) else pct
            if value is not None and value <= limit:  # -inf (no usable baseline) is past it, as the gate says
                yield Alert(
                    f"loss_limit:{a.name}:{period}",
                    "loss_limit",
                    "critical",
                    f"account {a.name}: {period} loss limit reached ({value:.2f}% <= {limit:g}%)",
                    {"account": a.name, "period": period, "pnl_pct": round(value, 4), "limit_pct": limit},
                    f"account {a.name}: back within its {period} loss limit (or a new period began)",
                )
        drawdown = _number(a.drawdown_pct)
        if drawdown is not None and a.max_drawdown_pct is not None and drawdown > a.max_drawdown_pct:
            yield Alert(
                f"loss_limit:{a.name}:drawdown",
                "loss_limit",
                "critical",
                f"account {a.name}: drawdown limit reached "
                f"({drawdown:.2f}% below the week's peak > {a.max_drawdown_pct:g}%)",
                {
                    "account": a.name,
                    "period": "drawdown",
                    "drawdown_pct": round(drawdown, 4),
                    "limit_pct": a.max_drawdown_pct,
                },
                f"account {a.name}: back within its drawdown limit (or a new week began)",
            )


def rule_actor_restarts(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    for actor, n in sorted(w.restarts_by_actor.items()):
        if n > cfg.actor_restarts:
            yield Alert(
                f"actor_restarts:{actor}",
                "actor_restarts",
                "warning",
                f"actor {actor} restarted {n} times in 10 minutes (more than {cfg.actor_restarts})",
                {"actor": actor, "restarts_10min": n, "limit": cfg.actor_restarts},
                f"actor {actor}: no longer restarting often",
            )


def rule_journal_failing(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    why = []
    if obs.journal_problem is not None:
        why.append(f"cannot write: {obs.journal_problem}")
    if obs.journal_blocking is not None and obs.journal_problem is None:
        why.append(obs.journal_blocking)
    if w.journal_dropped_recently > 0:
        why.append(f"{w.journal_dropped_recently} record(s) dropped in the last {DROP_WINDOW_S / 60:g} minutes")
    if why:
        yield Alert(
            "journal_failing",
            "journal_failing",
            "critical",
            "journal failing: " + "; ".join(why),
            {"reasons": "; ".join(why)},
            "journal writing again, nothing dropped lately",
        )


def rule_prices(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    """A symbol paused after a price spike, or without a fresh price (after the startup grace)."""
    for p in obs.prices:
        if p.pause:
            yield Alert(
                f"price_pause:{p.symbol}",
                "price_pause",
                "warning",
                f"{p.symbol} paused after a price spike: {p.pause}",
                {"symbol": p.symbol},
                f"{p.symbol} no longer paused: its opening orders trade again",
            )
        elif not p.fresh and obs.monotonic >= w.grace_end:
            yield Alert(
                f"price_stale:{p.symbol}",
                "price_stale",
                "warning",
                f"no fresh price for {p.symbol}: its opening orders block (PRICE_REFERENCE_STALE)",
                {"symbol": p.symbol},
                f"{p.symbol} priced again: its opening orders trade",
            )


RULES: tuple[Rule, ...] = (
    rule_halt,
    rule_reduce_only,
    rule_fail_closed,
    rule_source_stale,
    rule_loss_limit,
    rule_block_rate,
    rule_actor_restarts,
    rule_journal_failing,
    rule_prices,
)


def evaluate_rules(obs: Observation, windows: Windows, cfg: AlertsConfig) -> dict[str, Alert]:
    """Every alert that holds now, by key (the first rule to name a key wins)."""
    out: dict[str, Alert] = {}
    for rule in RULES:
        for alert in rule(obs, windows, cfg):
            out.setdefault(alert.key, alert)
    return out
