"""Lockouts: the account-level blocks that outlive one order, said for people.

An account is locked when its own state blocks every order that opens or
grows a position, whatever the order: a day or week start equity unknown, the
day's or week's loss limit hit, equity too far below the week's peak, or the
cooldown after a loss limit tripped. Each lockout has the code the gate blocks
with, a cause a person reads ("daily loss -3.6 % of -3.5 %"), since when
(where known) and until when at the latest it lifts by itself (the period's
end, the cooldown's). Reducing orders still pass every one of them.

Pure: the same `*_denial` functions the checks use decide whether a lockout
holds, so what operators see is what blocks orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from supervisor.config import PeriodsConfig, ProfileConfig
from supervisor.core.checks import baseline_denial, daily_loss_denial, drawdown_denial, weekly_loss_denial
from supervisor.core.messages import AccountState
from supervisor.core.periods import period_start
from supervisor.core.reasons import ReasonCode as RC

__all__ = ["Lockout", "account_lockouts", "most_binding", "period_end", "repeat_lockout"]


@dataclass(frozen=True, slots=True)
class Lockout:
    code: RC
    cause: str  # for people: rounded figures, no field names
    since: datetime | None  # when it began, where known
    until: datetime | None  # when it lifts by itself at the latest; None: only an operator lifts it
    lifts: str  # what lifts it


def period_end(period: str, now: datetime, periods: PeriodsConfig) -> datetime:
    """When the current day or week ends (the next one begins)."""
    return period_start(period, now, periods) + (timedelta(days=1) if period == "day" else timedelta(days=7))


def _pct(equity: float, start: float) -> float:
    return (equity - start) / start * 100.0 if start > 0 else float("-inf")


def account_lockouts(
    state: AccountState, profile: ProfileConfig, periods: PeriodsConfig, wall: datetime
) -> tuple[Lockout, ...]:
    """Every lockout holding for this account now (empty: none)."""
    found: list[Lockout] = []
    trips = dict(state.trips)
    if baseline_denial(state) is not None:
        for period in state.baseline_unknown:
            found.append(
                Lockout(
                    RC.BASELINE_UNKNOWN,
                    f"the {period}'s start equity is unknown",
                    None,
                    period_end(period, wall, periods),
                    f"at the {period}'s end, or when `riskgate baseline set` sets it",
                )
            )
    else:
        for period, denial, start, limit in (
            ("day", daily_loss_denial(state, profile), state.day_start_equity, profile.max_daily_loss_pct),
            ("week", weekly_loss_denial(state, profile), state.week_start_equity, profile.max_weekly_loss_pct),
        ):
            if denial is None:
                continue
            found.append(
                Lockout(
                    denial.code,
                    f"{'daily' if period == 'day' else 'weekly'} loss {_pct(state.equity, start):.1f} % of {limit:g} %",
                    trips.get(period),
                    period_end(period, wall, periods),
                    f"at the {period}'s end, or when equity recovers above the limit",
                )
            )
        drawdown = drawdown_denial(state, profile)
        if drawdown is not None and state.peak_equity is not None:
            below = (state.peak_equity - state.equity) / state.peak_equity * 100.0
            found.append(
                Lockout(
                    drawdown.code,
                    f"equity {below:.1f} % below the week's peak of {state.peak_equity:,.0f} "
                    f"(at most {profile.max_drawdown_pct:g} %)",
                    None,
                    period_end("week", wall, periods),
                    "at the week's end, or when equity recovers",
                )
            )
    until = state.cooldown_until
    if until is not None and wall < until:
        tripped = sorted((when, period) for period, when in state.trips if when <= until)
        since, which = tripped[-1] if tripped else (None, "")
        name = {"day": "the daily", "week": "the weekly"}.get(which, "a")
        found.append(
            Lockout(
                RC.LOSS_COOLDOWN,
                f"cooldown after {name} loss limit tripped",
                since,
                until,
                "when the cooldown ends, or `riskgate lockouts clear`",
            )
        )
    return tuple(found)


def repeat_lockout(side: str, quantity: float, symbol: str, price: float, until: datetime, limit: int,
                   window_s: float) -> Lockout:  # fmt: skip
    """The same order terms refused as repeats (a looping strategy) until the window lets one more."""
    return Lockout(
        RC.DUPLICATE_ORDER,
        f"the same {side} of {quantity:g} {symbol} at {price:g} came {limit} times within {window_s:g} s",
        None,
        until,
        "when the oldest of them leaves gate.duplicate_window_s (other orders of the account pass)",
    )


def most_binding(locks: tuple[Lockout, ...]) -> Lockout | None:
    """The lockout that holds new risk the longest: one only an operator lifts, else the latest
    `until`; a repeat latch (only its own terms block) only when nothing account-wide holds."""
    wide = [lock for lock in locks if lock.code is not RC.DUPLICATE_ORDER] or list(locks)
    if not wide:
        return None
    return max(wide, key=lambda lock: (lock.until is None, lock.until.timestamp() if lock.until else 0.0))
