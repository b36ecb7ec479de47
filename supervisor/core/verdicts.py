"""Verdicts of the checks that do not read the order, kept until their inputs change.

Most checks depend only on upstream and account state: the journal, ESS and
Risk v3 (checks 0-5: `market_blockers`), an account's freshness, baselines,
loss limits and drawdown (8, 12-12a). Those states change a few times a
second; orders arrive far more often. This module remembers, per state object,
that these checks passed, so an order then skips them: the gate runs only the
checks that read the order (and the cheap time tests the skipped ones contain:
ages, the signal's own age). Only passes are remembered (in the state's
`VerdictCache`): anything that fails runs the full check list, which gives
the code, the reason and any override.

The cache is keyed by identity: a new ESS state, signal, account book, journal
verdict or config is a new object, so a changed input is never read as the
old one. The time tests are the checks' own expressions, so a cached pass and
the full list agree to the last float (tests/supervisor/core/test_verdicts.py
compares both on random states and orders).
"""

from __future__ import annotations

from datetime import datetime

from supervisor.config import Config
from supervisor.core.checks import (
    account_denial,
    baseline_denial,
    daily_loss_denial,
    drawdown_denial,
    market_blockers,
    weekly_loss_denial,
)
from supervisor.core.gate_state import GateState

__all__ = ["account_passes", "market_passes"]


def market_passes(state: GateState, config: Config, now: float, wall: datetime) -> bool:
    """Whether checks 0-5 pass for every order now (so none needs an override)."""
    cache = state.verdicts
    m = cache.market
    if not (
        m is not None
        and m[0] is state.ess
        and m[1] == state.ess_received
        and m[2] is state.signal
        and m[3] == state.signal_received
        and m[4] is state.journal_blocking
        and m[5] is config
    ):
        cache.market = None
        if market_blockers(
            journal_blocking=state.journal_blocking,
            ess=state.ess,
            ess_received=state.ess_received,
            signal=state.signal,
            signal_received=state.signal_received,
            config=config,
            now=now,
            wall=wall,
        ):
            return False
        cache.market = (
            state.ess,
            state.ess_received,
            state.signal,
            state.signal_received,
            state.journal_blocking,
            config,
        )
        return True
    # The same state passed before: only time can have changed. The checks' own tests, exactly.
    if now - state.ess_received > config.ess.max_age_s:
        return False
    risk = config.risk_v3
    if now - state.signal_received > risk.max_age_s:
        return False
    sig = state.signal
    if sig is None:
        return False
    signal_age = (wall - sig.timestamp).total_seconds()
    return -risk.max_clock_skew_s <= signal_age <= risk.max_signal_age_s


def account_passes(account: str, state: GateState, config: Config, now: float) -> bool:
    """Whether checks 7 (fresh, readable), 11, 12 (baseline known, day and week
    loss) and 12a (drawdown) pass for any order of `account` now."""
    book = state.books.get(account)
    if book is None:
        return False
    accounts = state.verdicts.accounts
    seen = accounts.get(account)
    if seen is None or seen[0] is not book or seen[1] is not config:
        acct = config.accounts.accounts.get(account)
        profile = config.profiles.get(acct.capital_profile) if acct is not None else None
        s = book.state
        if (
            profile is None
            or account_denial(account, s, book.received, book.usable, now, config)
            or baseline_denial(s)
            or daily_loss_denial(s, profile)
            or weekly_loss_denial(s, profile)
            or drawdown_denial(s, profile)
        ):
            accounts.pop(account, None)
            return False
        accounts[account] = (book, config)
    return not (now - book.received > config.accounts.max_age_s)
