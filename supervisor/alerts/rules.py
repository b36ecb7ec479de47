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
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from supervisor.config import AlertsConfig
from supervisor.core.halts import OPERATOR_HALT_SOURCE, halt_cause, halt_source, operator_halts

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
    ess_readings: tuple[tuple[str, str], ...] = ()  # (source, detail) of each that halts
    reduce_only: str | None = None  # while an operator's reduce-only halt holds: by whom and why
    gate_alive: bool = True
    journal_problem: str | None = None
    journal_blocking: str | None = None
    journal_dropped: int = 0
    unusable: tuple[str, ...] = ()  # fresh by age, yet blocking: "Risk v3 signal evaluated 3600s ago ..."
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


_SOURCE_NAMES = {"risk_v3": "Risk v3", "ess": "ESS", "prices": "the prices source", "store": "the shared store"}


def source_name(name: str) -> str:
    """A source for people: "Risk v3", "ESS", "account main"."""
    if name.startswith("account:"):
        return f"account {name.removeprefix('account:')}"
    return _SOURCE_NAMES.get(name, name)


def _describe(src: SourceReading) -> str:
    """How old a source's state is against its limit: "Risk v3 state is 10.1 s old (limit 10 s)"."""
    name = source_name(src.name)
    if src.age_s is None:
        return f"{name} has sent no state yet"
    age, limit = _number(src.age_s), _number(src.max_age_s)
    held = f"(limit {'unknown' if limit is None else f'{limit:g} s'})"
    return f"{name} state age unknown {held}" if age is None or age < 0.0 else f"{name} state is {age:.1f} s old {held}"


def rule_source_stale(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    for src, stale_s in _stale(obs, w):
        if stale_s >= cfg.source_stale_s:
            yield Alert(
                f"source_stale:{src.name}",
                "source_stale",
                "critical",
                f"{_describe(src)}: stale for {cfg.source_stale_s:g} s or more",
                {"source": src.name, "age_s": _number(src.age_s), "max_age_s": _number(src.max_age_s)},
                f"{source_name(src.name)} is fresh again",
            )


def rule_fail_closed(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    """The gate blocks orders for want of state: the same reasons as `/readyz`."""
    why = [] if obs.gate_alive else ["the gate is not running"]
    why += [_describe(src) for src, _ in _stale(obs, w)]
    if obs.ess_active is None and any(s.name == "ess" and s.age_s is not None for s in obs.sources):
        why.append(f"ESS state unknown ({obs.ess_reason or 'no reading'})")
    why += obs.unusable
    if obs.journal_blocking is not None:
        blocking = obs.journal_blocking
        why.append(blocking if blocking.startswith("journal") else f"journal: {blocking}")
    if why:
        yield Alert(
            "fail_closed",
            "fail_closed",
            "critical",
            "gate failing closed: " + "; ".join(why),
            {"reasons": "; ".join(why)},
            "gate no longer failing closed: every source fresh, the journal writing",
        )


def _readings(obs: Observation) -> list[tuple[str, str]]:
    """(source, detail) of each halting ESS source: as observed, else cut out of the combined
    reason ("http: desk halt; kill_switch_file: ...") at each halting source's name."""
    if obs.ess_readings:
        return list(obs.ess_readings)
    reason = obs.ess_reason or "no reason given"
    if not obs.ess_halting:
        return [("unknown", reason)]
    names = "|".join(re.escape(h) for h in obs.ess_halting)
    cuts = list(re.finditer(rf"(?:^|; )({names}): ", reason))
    if not cuts or cuts[0].start() != 0:
        return [(", ".join(obs.ess_halting), reason)]
    ends = [c.start() for c in cuts[1:]] + [len(reason)]
    return [(c.group(1), reason[c.end() : end]) for c, end in zip(cuts, ends, strict=True)]


def _clock_time(iso: str) -> str:
    """The time of day of an ISO 8601 instant, "01:34 UTC" ("" when it is none)."""
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f"{when.astimezone(UTC):%H:%M} UTC" if when.tzinfo is not None else ""


def _halt_words(obs: Observation) -> tuple[str, str]:
    """Who halts and why, each cause once ("operator bob (since 01:34 UTC): drill; ESS (http):
    desk halt"), and just who ("operator bob, ESS (http)") for the resolved message."""
    causes: list[str] = []
    who: list[str] = []
    for source, detail in _readings(obs):
        halts = operator_halts(detail) if source == OPERATOR_HALT_SOURCE else []
        for by, since, reason in halts:
            at = _clock_time(since)
            causes.append(f"operator {by}{f' (since {at})' if at else ''}: {reason}")
            who.append(f"operator {by}")
        if not halts:
            causes.append(halt_cause(source, detail))
            who.append(halt_source(source) if source != "unknown" else "an unknown ESS source")
    return "; ".join(causes), ", ".join(who)


def rule_halt(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    if obs.ess_active is True:
        halting = ", ".join(obs.ess_halting) or "unknown"
        causes, who = _halt_words(obs)
        yield Alert(
            "halt",
            "halt",
            "critical",
            f"trading halted by {causes}",
            {"halted_by": halting, "reason": obs.ess_reason},
            f"trading no longer halted by {who}",
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
                shown = f"{value:.2f} %" if math.isfinite(value) else "unknown (no start equity)"
                yield Alert(
                    f"loss_limit:{a.name}:{period}",
                    "loss_limit",
                    "critical",
                    f"account {a.name}: {period} loss limit reached: {shown} (limit {limit:g} %)",
                    {"account": a.name, "period": period, "pnl_pct": round(value, 4), "limit_pct": limit},
                    f"account {a.name}: back within its {period} loss limit (or a new period began)",
                )
        drawdown = _number(a.drawdown_pct)
        if drawdown is not None and a.max_drawdown_pct is not None and drawdown > a.max_drawdown_pct:
            yield Alert(
                f"loss_limit:{a.name}:drawdown",
                "loss_limit",
                "critical",
                f"account {a.name}: drawdown limit reached: equity {drawdown:.2f} % below the week's peak "
                f"(limit {a.max_drawdown_pct:g} %)",
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


_SPIKE = re.compile(
    r"(?P<move>[+-][\d.]+)% \((?P<path>[^)]*)\) within (?P<window>[\d.e+]+)s > prices\.spike_pct=(?P<pct>[\d.e+]+)"
    r": opening orders paused for (?P<pause>[\d.e+]+)s"
)


def _spike_words(symbol: str, why: str) -> str:
    """A pause's reason for people, the symbol not again: "moved +15.0 % (150 → 172.5) within
    60 s (more than 10 %): opening orders paused for 300 s"."""
    why = why.removeprefix(f"{symbol} ")
    m = _SPIKE.search(why)
    if m is None:
        return why
    path = m["path"].replace(" -> ", " → ")
    return (
        f"moved {m['move']} % ({path}) within {m['window']} s (more than {m['pct']} %): "
        f"opening orders paused for {m['pause']} s"
    )


def rule_prices(obs: Observation, w: Windows, cfg: AlertsConfig) -> Iterable[Alert]:
    """A symbol paused after a price spike, or without a fresh price (after the startup grace)."""
    for p in obs.prices:
        if p.pause:
            yield Alert(
                f"price_pause:{p.symbol}",
                "price_pause",
                "warning",
                f"{p.symbol} paused after a price spike: {_spike_words(p.symbol, p.pause)}",
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
