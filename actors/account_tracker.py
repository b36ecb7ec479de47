"""AccountTrackerActor: per-account equity, positions and period baselines.

It turns account snapshots (pushed through the facade, or polled from
`{accounts.snapshot_url}/accounts/{name}/snapshot`) and fills into
`AccountState` messages for the gate. The equity at the start of the day and
of the week is the last equity seen before the period began; the very first
time an account is seen, the first equity (logged as a warning,
`baseline_started_mid_period`). Baselines live in the `BaselineStore` under
`[state] dir`, so a restart mid-day keeps the day's baseline and a loss
limit stays hit.

A baseline is unknown, and the account's opening orders block as
BASELINE_UNKNOWN until its period ends or an operator sets it, when the store
of an initialised state folder was lost, or when the wall clock went back
behind a period already begun and no baseline of the real period is on record.

With several instances (store.backend = "postgresql") the baselines, the
week's peak, the loss limits' trip times and the last equity are shared
(`BaselineShare`): each one set here is offered to the shared store (at once
for a period's baseline and a trip, at the next poll for a peak), the row that
holds there is the one used, and each poll takes up what other instances (or an
operator) wrote. A baseline taken from this instance's first equity counts as
unknown until the store confirmed it: another instance may hold the real one.
The local store stays the cache a restart reads before the shared one answers.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
from cachetools import LRUCache

from actors.base import PolledSourceActor
from actors.messages import ClearCooldown
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock, SystemClock
from supervisor.config import Config
from supervisor.core.lockouts import account_lockouts
from supervisor.core.messages import AccountSnapshot, AccountState, ConfigChanged, Fill, Position
from supervisor.core.orders import config_symbol
from supervisor.core.periods import PERIODS, period_start
from supervisor.core.reasons import ReasonCode as RC
from supervisor.core.values import plain_str, shorten
from supervisor.logs import get_logger
from supervisor.sources.baseline_store import Baseline, BaselineShare, BaselineStore, open_store
from supervisor.sources.http import FailureLog, FetchError, fetch_json
from supervisor.sources.upstream import UpstreamError, check_fill, check_snapshot, parse_account_snapshot

__all__ = ["AccountTrackerActor"]

log = get_logger("riskgate.accounts")
_real = SystemClock()  # poll rounds are budgeted in real time, whatever clock drives them


class AccountTrackerActor(PolledSourceActor):
    def __init__(
        self,
        config: Config,
        clock: Clock,
        gate: GateLink,
        transport: httpx.BaseTransport | None = None,
        journal: JournalQueue | None = None,
        share: BaselineShare | None = None,
    ) -> None:
        super().__init__(clock, gate, transport, journal)
        self._config = config
        self._store: BaselineStore | None = None
        self._share = share
        self._outbox: dict[tuple[str, str, datetime], Baseline] = {}  # rows not yet taken by the shared store
        self._unconfirmed: set[tuple[str, str]] = set()  # (account, period) whose row the store has not confirmed
        self._share_failing = False  # a shared call failed this poll: the next poll tries again
        self._share_down = False  # said once per outage
        self._share_down_since: float | None = None  # monotonic: since when the shared store failed
        self._equities_taken = False  # the shared last equities read once
        self._resend: set[str] = set()  # accounts whose baselines the shared store changed
        self._equity_out: dict[str, tuple[float, datetime]] = {}  # last equities not yet shared
        self._latest: dict[str, AccountState] = {}
        self._last_equity: dict[str, float] = {}
        self._baselines: dict[tuple[str, str], Baseline] = {}  # the latest of each (account, period)
        self._poll_failures: dict[str, FailureLog] = {}
        self._problems: dict[str, str] = {}  # account -> why its latest snapshot was unusable
        self._taken_at: dict[str, datetime] = {}  # account -> timestamp of the last snapshot applied
        self._filled_at: dict[str, datetime] = {}  # account -> when the last fill was applied (wall)
        self.refused_snapshots = 0
        self._round = 0
        self._refused_names: LRUCache[str, bool] = LRUCache(maxsize=256)

    # -- life cycle --------------------------------------------------------------
    def open_resources(self) -> None:
        now = self._clock.now()
        self._store, lost = open_store(self._config.state.dir, now)
        self._baselines = self._store.latest()
        self._last_equity = self._store.last_equity()
        if lost is not None:
            self._store_lost(lost, now)
        # After a restart, fills keep applying to the positions the gate already has,
        # and an account whose last snapshot was unusable stays failed closed.
        self._latest = {state.account: state for state in self._gate.latest_accounts()}
        self._problems = {s.account: s.problem for s in self._latest.values() if s.problem is not None}
        if self._baselines:
            log.info("baselines_loaded", path=str(self._store.path), count=len(self._baselines))
        if self._share is not None:
            # Ours offered (a first start on the shared store uploads them), then everyone's taken up.
            for (account, period), b in self._baselines.items():
                self._outbox[(account, period, b.period_start)] = b
                self._unconfirmed.add((account, period))
            self._sync(now)
        if self._config.accounts.snapshot_url:
            self.open_client(self._config.accounts.timeout_s)

    def _store_lost(self, why: str, now: datetime) -> None:
        """Every configured account's current day and week baseline is unknown."""
        log.error("baseline_store_lost", cause=why, accounts=len(self._config.accounts.accounts))
        self.event("baseline_store_lost", "accounts", cause=why)
        for account in self._config.accounts.accounts:
            for period in PERIODS:
                self._set(account, period, Baseline(self._period_start(period, now), None, "store_lost"), now)

    def release_resources(self) -> None:
        super().release_resources()
        if self._share is not None:
            self._share.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_message(self, message: object) -> object:
        if isinstance(message, AccountSnapshot):
            return self._on_snapshot(message)
        if isinstance(message, Fill):
            return self._on_fill(message)
        if isinstance(message, ClearCooldown):
            return self._clear_cooldown(message)
        if isinstance(message, ConfigChanged):
            # Accounts added or removed, plausibility bounds: restart-only keys never change here.
            self._config = message.config
            return None
        log.warning("account_tracker_unknown_message", message_type=type(message).__name__)
        return None

    # -- polling -------------------------------------------------------------------
    def poll(self) -> int:
        """Take up baselines an operator set; then fetch every configured
        account's snapshot once (when polling). Returns how many were usable."""
        self._reload_if_changed()
        if self._share is not None:
            self._sync(self._clock.now())
        if self._client is None:
            return 0
        good = 0
        # The round has a budget (half the heartbeat timeout), so a slow upstream
        # cannot hold the actor past a ping; it starts one account further each
        # time, so a slow account cannot keep the others from their turn.
        names = list(self._config.accounts.accounts)
        first = self._round % len(names) if names else 0
        self._round += 1
        ends = _real.monotonic() + self._config.supervision.heartbeat_timeout_s / 2
        for name in names[first:] + names[:first]:
            failures = self._poll_failures.get(name)
            if failures is None:
                failures = self._poll_failures[name] = FailureLog("riskgate.accounts", f"account:{name}", self.event)
            url = f"{self._config.accounts.snapshot_url}/accounts/{name}/snapshot"
            left = min(self._config.accounts.timeout_s, ends - _real.monotonic())
            if left <= 0:
                failures.failed("round_over_budget", "not polled this round: earlier accounts used the time", url=url)
                continue
            try:
                body = fetch_json(self._client, url, left)
                snapshot = parse_account_snapshot(body, self._config.accounts.max_plausible_usd)
                if snapshot.account != name:
                    raise UpstreamError(f"account: asked for {name!r}, got {snapshot.account!r}")
            except FetchError as exc:
                failures.failed(exc.kind, exc.detail, url=url)
                continue
            except UpstreamError as exc:
                failures.failed("unparsable", str(exc), url=url)
                continue
            except Exception as exc:  # noqa: BLE001 - one account's odd answer must not end the round
                failures.failed("error", f"{type(exc).__name__}: {exc}", url=url)
                continue
            failures.succeeded(url=url)
            self._on_snapshot(snapshot)
            good += 1
        return good

    # -- state ---------------------------------------------------------------------
    def _period_start(self, period: str, now: datetime) -> datetime:
        return period_start(period, now, self._config.periods)

    def _set(self, account: str, period: str, baseline: Baseline, now: datetime) -> Baseline:
        """Keep `baseline` (and offer it to the shared store); the one that holds."""
        self._baselines[(account, period)] = baseline
        if self._store is not None:
            self._store.put(account, period, baseline, now)
        if self._share is not None:
            self._outbox[(account, period, baseline.period_start)] = baseline
            self._unconfirmed.add((account, period))
            if period != "peak" and not self._share_failing:  # a peak waits for the poll: it moves often
                self._offer(now)
        return self._baselines[(account, period)]

    # -- the shared store (several instances) --------------------------------------------------
    def _sync(self, now: datetime) -> None:
        """Offer what is waiting, take up what others wrote, share the last equities; then
        send the accounts whose baselines changed. A failure is logged once and retried at
        the next poll (meanwhile a first-equity baseline of ours counts as unknown)."""
        if self._share is None:
            return
        self._share_failing = False
        self._offer(now)
        if self._share_failing:
            return
        try:
            rows = self._share.changes(now - timedelta(days=8))
            if not self._equities_taken:  # once: a later equity another instance saw than ours
                mine = self._store.last_equity_times() if self._store is not None else {}
                for account, (equity, at) in self._share.last_equities().items():
                    held = mine.get(account)
                    known = account in self._config.accounts.accounts and math.isfinite(equity)
                    if known and (held is None or at > held[1]):
                        self._last_equity[account] = equity
                self._equities_taken = True
            self._share.save_last_equities(dict(self._equity_out))
            self._equity_out.clear()
        except Exception as exc:  # noqa: BLE001 - the store unreachable or odd: fail closed, try again
            self._shared_failed(exc)
            return
        self._share_down_since = None
        if self._share_down:
            self._share_down = False
            log.warning("shared_baselines_recovered")
            self.event("shared_baselines_recovered", "accounts")
            self._resend.update(self._latest)  # confirmed again: no account waits for its next snapshot
        for account, period, b in rows:
            self._adopt(account, period, b, now)
        todo, self._resend = self._resend, set()
        for account in sorted(todo):
            last = self._latest.get(account)
            if last is not None:
                self._send(replace(last, refreshed=False), now)

    def _offer(self, now: datetime) -> None:
        if self._share is None or not self._outbox:
            return
        offered = [(account, period, b) for (account, period, _start), b in sorted(self._outbox.items())]
        try:
            held = self._share.merge(offered, now)
        except Exception as exc:  # noqa: BLE001 - see _sync
            self._shared_failed(exc)
            return
        self._outbox.clear()
        self._unconfirmed.difference_update((account, period) for account, period, _b in offered)
        for account, period, b in held:
            self._adopt(account, period, b, now)

    def _adopt(self, account: str, period: str, b: Baseline, now: datetime) -> None:
        """Take up a row the shared store holds: the current period's, or a newer one this
        instance has not reached yet (never one ahead of this instance's clock)."""
        if account not in self._config.accounts.accounts:
            return
        key = (account, period)
        held = self._baselines.get(key)
        kind = "day" if period.startswith("day") else "week"  # peak, week_*, cooldown_clear: the week's
        if b.period_start > self._period_start(kind, now) or (held is not None and b.period_start < held.period_start):
            return
        if held == b:
            return
        self._baselines[key] = b
        if self._store is not None:
            self._store.put(account, period, b, now)
        self._resend.add(account)
        if b.source.startswith("operator:") and (held is None or held.source != b.source or held.equity != b.equity):
            self.event("baseline_taken_up", "operator", account, period=period, equity=b.equity, set_by=b.source)
            log.warning("baseline_taken_up", account=account, period=period, equity=b.equity, set_by=b.source)

    def _shared_failed(self, exc: Exception) -> None:
        self._share_failing = True
        if self._share_down_since is None:
            self._share_down_since = self._clock.monotonic()
        if not self._share_down:
            self._share_down = True
            log.error("shared_baselines_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
            self.event("shared_baselines_unavailable", "accounts", error=f"{type(exc).__name__}: {exc}"[:300])

    def _baseline(self, period: str, account: str, now: datetime, equity: float) -> Baseline:
        start = self._period_start(period, now)
        current = self._baselines.get((account, period))
        if current is not None and current.period_start > start:
            # The wall clock went back behind a period already begun: a baseline
            # taken "in the future" is not trusted; the real period's is looked up.
            dropped = self._store.forget_after(account, period, start) if self._store is not None else 0
            current = self._store.get(account, period, start) if self._store is not None else None
            self.event("baseline_from_future", "accounts", account, period=period, period_start=start)
            log.warning(
                "baseline_from_future",
                account=account,
                period=period,
                period_start=start.isoformat(),
                dropped=dropped,
                restored=current is not None and current.equity is not None,
            )
            if current is None:
                current = self._set(account, period, Baseline(start, None, "clock_went_back"), now)
            self._baselines[(account, period)] = current
        if current is None or current.period_start < start:
            last = self._last_equity.get(account)
            if last is not None:
                # The last equity seen before the period began is its opening equity.
                current = self._set(account, period, Baseline(start, last, "last_equity"), now)
                log.info(
                    "period_baseline_set", period=period, account=account, period_start=start.isoformat(), equity=last
                )
            else:
                current = self._set(account, period, Baseline(start, equity, "first_equity"), now)
                self.event("baseline_started_mid_period", "accounts", account, period=period, equity=equity)
                log.warning(
                    "baseline_started_mid_period",
                    period=period,
                    account=account,
                    period_start=start.isoformat(),
                    equity=equity,
                    note="first equity ever seen for this account: losses before it are not counted",
                )
        return current

    def _reload_if_changed(self) -> None:
        """Take up baselines an operator wrote (`riskgate baseline set`) and
        send the affected accounts' state to the gate at once."""
        if self._store is None or not self._store.changed_elsewhere():
            return
        stored = self._store.latest()
        changed = {key[0] for key, b in stored.items() if self._baselines.get(key) != b}
        self._baselines.update(stored)
        for account in sorted(changed):
            b = {p: self._baselines.get((account, p)) for p in PERIODS}
            figures = {
                **{f"{p}_start_equity": (x.equity if x else None) for p, x in b.items()},
                **{f"{p}_source": (x.source if x else None) for p, x in b.items()},
            }
            self.event("baseline_taken_up", "operator", account, **figures)
            log.warning("baseline_taken_up", account=account, **figures)
            last = self._latest.get(account)
            if last is not None:
                self._send(replace(last, refreshed=False), self._clock.now())

    def _with_baselines(self, state: AccountState, now: datetime) -> AccountState:
        day = self._baseline("day", state.account, now, state.equity)
        week = self._baseline("week", state.account, now, state.equity)
        down = self._share_down_since
        unconfirmed = down is not None and self._clock.monotonic() - down > self._config.store.max_age_s
        unknown = tuple(
            p
            for p, b in (("day", day), ("week", week))
            # Not confirmed by the shared store for longer than store.max_age_s: another instance
            # may hold a trip or a baseline this one has not read (unknown is not "not tripped").
            if b.equity is None
            or unconfirmed
            or (b.source == "first_equity" and (state.account, p) in self._unconfirmed)
        )
        day_start = state.equity if day.equity is None else day.equity
        week_start = state.equity if week.equity is None else week.equity
        trips, until = self._trips(state, ((day, day_start), (week, week_start)), now)
        return replace(
            state,
            day_start_equity=day_start,
            week_start_equity=week_start,
            baseline_unknown=unknown,
            peak_equity=self._peak(state, week.period_start, week_start, now),
            cooldown_until=until,
            trips=trips,
        )

    def _peak(self, state: AccountState, week_start: datetime, opening: float, now: datetime) -> float | None:
        """The week's equity peak so far (kept with the baselines: a restart keeps it;
        a new week starts from its opening equity)."""
        if not math.isfinite(state.equity) or not math.isfinite(opening):
            return None
        key = (state.account, "peak")
        held = self._baselines.get(key)
        peak = max(opening, state.equity)
        if held is not None and held.period_start == week_start and held.equity is not None and held.equity >= peak:
            return held.equity
        self._set(state.account, "peak", Baseline(week_start, peak, "equity_peak"), now)
        return peak

    def _trips(
        self, state: AccountState, periods: tuple[tuple[Baseline, float], ...], now: datetime
    ) -> tuple[tuple[tuple[str, datetime], ...], datetime | None]:
        """When the day's and week's loss limits tripped in their current periods (kept with the
        baselines), and until when new positions stay blocked: `cooldown_minutes` after the
        latest trip, unless an operator cleared the cooldown after it."""
        account = self._config.accounts.accounts.get(state.account)
        profile = self._config.profiles.get(account.capital_profile) if account is not None else None
        if profile is None or not math.isfinite(state.equity):
            return (), None
        cleared = self._baselines.get((state.account, "cooldown_clear"))
        week = self._period_start("week", now)
        clear = _instant(cleared.equity, week, now) if cleared is not None and cleared.period_start == week else None
        cleared_at = clear.timestamp() if clear is not None else None
        trips: list[tuple[str, datetime]] = []
        until = None
        for (period, limit), (baseline, start) in zip(
            (("day", profile.max_daily_loss_pct), ("week", profile.max_weekly_loss_pct)), periods, strict=True
        ):
            breached = start > 0 and (state.equity - start) / start * 100.0 <= limit
            tripped = self._held_instant(state.account, f"{period}_trip", baseline.period_start, now)
            if tripped is None and breached:
                held = self._set(
                    state.account, f"{period}_trip", Baseline(baseline.period_start, now.timestamp(), "tripped"), now
                )
                tripped = _instant(held.equity, baseline.period_start, now) or now
                self.event("loss_limit_tripped", "accounts", state.account, period=period, equity=state.equity)
            again = self._held_instant(state.account, f"{period}_retrip", baseline.period_start, now)
            latest = max((t for t in (tripped, again) if t is not None), default=None)
            if breached and latest is not None and cleared_at is not None and cleared_at >= latest.timestamp():
                # Past the limit again after an operator cleared the cooldown: a new one from now.
                held = self._set(state.account, f"{period}_retrip",
                                 Baseline(baseline.period_start, now.timestamp(), "tripped_again"), now)  # fmt: skip
                latest = _instant(held.equity, baseline.period_start, now) or now
                self.event("loss_limit_tripped", "accounts", state.account, period=period, equity=state.equity,
                           after_clear=True)  # fmt: skip
            tripped = latest
            if tripped is None:
                continue
            trips.append((period, tripped))
            if profile.cooldown_minutes is not None and (cleared_at is None or cleared_at < tripped.timestamp()):
                end = tripped + timedelta(minutes=profile.cooldown_minutes)
                until = end if until is None or end > until else until
        return tuple(trips), until

    def _held_instant(self, account: str, kind: str, start: datetime, now: datetime) -> datetime | None:
        """The instant a trip row of the current period holds, if it is one (not before the
        period, not ahead of now: a row written by hand or by an instance whose clock ran wrong
        is no trip: the limit is judged again)."""
        held = self._baselines.get((account, kind))
        if held is None or held.period_start != start:
            return None
        return _instant(held.equity, start, now)

    def _clear_cooldown(self, message: ClearCooldown) -> dict[str, object]:
        """Record an operator's clear of the account's cooldown; the account's new state."""
        last = self._latest.get(message.account)
        if message.account not in self._config.accounts.accounts or last is None:
            return {"cleared": False, "why": f"no state for account {message.account!r} yet"}
        if last.cooldown_until is None or last.cooldown_until <= self._clock.now():
            return {"cleared": False, "why": "no cooldown holds for this account"}
        now = self._clock.now()
        account = self._config.accounts.accounts[message.account]
        profile = self._config.profiles.get(account.capital_profile)
        causes = [
            lk for lk in (account_lockouts(last, profile, self._config.periods, now) if profile else ())
            if lk.code in (RC.DAILY_LOSS_LIMIT, RC.WEEKLY_LOSS_LIMIT, RC.DRAWDOWN_LIMIT)
        ]  # fmt: skip
        if causes:
            # The cooldown is for the time after the loss: cleared now, it would be gone the moment
            # equity came back inside the limit (found by a probe).
            held = f"{causes[0].code.value}: {causes[0].cause}"
            return {"cleared": False, "why": f"the loss behind the cooldown still holds ({held}): the cooldown "
                    "can be cleared once equity is back inside the limit"}  # fmt: skip
        week = self._period_start("week", now)
        self._set(message.account, "cooldown_clear", Baseline(week, now.timestamp(), f"operator:{message.by}"), now)
        self.event("lockout_cleared", "operator", message.account, code="LOSS_COOLDOWN", by=message.by,
                   reason=message.reason, was_until=last.cooldown_until.isoformat())  # fmt: skip
        log.warning("lockout_cleared", account=message.account, by=message.by, reason=message.reason)
        state = self._send(replace(last, refreshed=False), now)
        until = state.cooldown_until.isoformat() if state.cooldown_until is not None else None
        return {"cleared": True, "was_until": last.cooldown_until.isoformat(), "cooldown_until": until}

    def _send(self, state: AccountState, now: datetime) -> AccountState:
        state = self._with_baselines(state, now)
        self._latest[state.account] = state
        self._gate.tell(state)
        return state

    def _refuse(self, snap: AccountSnapshot) -> None:
        """A snapshot for an account the config does not name is refused: kept,
        it would grow memory and the store without bound. Counted; each name
        logged once (among the last few hundred)."""
        self.refused_snapshots += 1
        name = shorten(snap.account, 40)
        if name not in self._refused_names:
            self._refused_names[name] = True
            log.warning("snapshot_refused_unknown_account", account=name, refused_total=self.refused_snapshots)

    def _on_snapshot(self, snap: AccountSnapshot) -> AccountState | None:
        if plain_str(snap.account) not in self._config.accounts.accounts:
            self._refuse(snap)
            return None
        try:
            snap = check_snapshot(snap, self._config.accounts.max_plausible_usd)
            exchange = self._config.accounts.accounts[snap.account].exchange
            for i, p in enumerate(snap.positions):
                if p.exchange != exchange:
                    # An account trades on one exchange (fills are held to it too): a position
                    # elsewhere would count against another exchange's cap and set its marks.
                    raise UpstreamError(
                        f"positions[{i}]: on {shorten(p.exchange, 30)}, but account {snap.account!r} trades on"
                        f" {exchange!r}"
                    )
            positions = tuple(replace(p, symbol=self._symbol(p.symbol)) for p in snap.positions)
            if len({(p.symbol, p.exchange) for p in positions}) != len(positions):
                raise UpstreamError("positions: one position given twice under two names of its symbol")
            snap = replace(snap, positions=positions)
        except UpstreamError as exc:
            return self._unusable(snap.account, str(exc))
        now = self._clock.now()
        if snap.timestamp is not None:
            why = self._timeliness(snap, snap.timestamp, now)
            if why is not None and "future" in why:
                return self._unusable(snap.account, f"snapshot {why}")
            if why is not None:
                # Not applied: the account keeps ageing from the last usable snapshot.
                log.warning("snapshot_not_applied", account=snap.account, why=why)
                return None
            # A stamp a little ahead (within the skew) counts as now: it must not make the
            # next honest snapshot look out of order.
            self._taken_at[snap.account] = min(snap.timestamp, now)
        self._reload_if_changed()
        state = AccountState(
            account=snap.account,
            equity=snap.equity,
            positions=tuple(p for p in snap.positions if p.quantity != 0.0),
            day_start_equity=snap.equity,
            week_start_equity=snap.equity,
        )
        self._problems.pop(snap.account, None)
        state = self._send(state, now)
        self._last_equity[snap.account] = snap.equity
        if self._store is not None:
            self._store.save_last_equity(snap.account, snap.equity, now)
        if self._share is not None:
            self._equity_out[snap.account] = (snap.equity, now)
        return state

    def _timeliness(self, snap: AccountSnapshot, taken: datetime, now: datetime) -> str | None:
        """Why a stamped snapshot must not be applied, or None to apply it."""
        age = (now - taken).total_seconds()
        if age < -self._config.accounts.max_clock_skew_s:
            return f"stamped {-age:.0f}s in the future"
        if age > self._config.accounts.max_age_s:
            return f"taken {age:.0f}s ago, older than accounts.max_age_s"
        previous = self._taken_at.get(snap.account)
        if previous is not None and taken < previous:
            return f"taken before the snapshot already applied ({previous.isoformat()}): out of order"
        filled = self._filled_at.get(snap.account)
        if filled is not None and taken < filled:
            # It may not show that fill yet: applied, it would undo the position the fill moved.
            return f"taken before the last fill was applied ({filled.isoformat()}): it may not show it"
        return None

    def _unusable(self, account: str, problem: str) -> AccountState:
        """The account fails closed until a usable snapshot: the gate keeps the
        last known positions (they still count against the exchange's cap)."""
        log.warning("snapshot_unusable", account=account, problem=problem)
        self.event("snapshot_unusable", "accounts", account, problem=problem)
        self._problems[account] = problem
        last = self._latest.get(account)
        if last is None:
            state = AccountState(account, math.nan, (), math.nan, math.nan, problem=problem)
        else:
            state = replace(last, problem=problem, refreshed=True)
        self._gate.tell(state)
        return state

    def _on_fill(self, fill: Fill) -> AccountState | None:
        try:
            fill = check_fill(fill, self._config.accounts.max_plausible_usd)
        except UpstreamError as exc:
            log.warning("fill_refused", error=str(exc))
            return None
        account = self._config.accounts.accounts.get(fill.account)
        if account is None:
            log.warning("fill_refused", error=f"account {shorten(fill.account, 40)} is not configured")
            return None
        if fill.exchange != account.exchange:
            log.warning(
                "fill_refused",
                error=f"account {fill.account!r} trades on {account.exchange!r}, the fill names {fill.exchange!r}",
                order_id=fill.order_id,
            )
            return None
        fill = replace(fill, symbol=self._symbol(fill.symbol))
        self._filled_at[fill.account] = self._clock.now()
        state = self._latest.get(fill.account)
        if state is not None:
            state = replace(
                state,
                positions=_apply_fill(state.positions, fill),
                refreshed=False,
                problem=self._problems.get(fill.account),
            )
            state = self._send(state, self._clock.now())
        else:
            log.warning("fill_before_snapshot", account=fill.account, order_id=fill.order_id)
        # After the new positions, so the fill's notional is never counted by neither.
        self._gate.tell(fill)
        return state

    def _symbol(self, symbol: str) -> str:
        """A configured symbol as is; an exchange-unified one ("BTC/USDT") in config terms."""
        return symbol if symbol in self._config.symbols else config_symbol(symbol)

    def latest(self) -> list[AccountState]:
        """Every account's latest state, as last sent to the gate."""
        return list(self._latest.values())


def _instant(epoch: float | None, start: datetime, now: datetime) -> datetime | None:
    """Epoch seconds as an instant of the period begun at `start`, up to now (an hour's skew
    allowed); None for anything else (NaN, before the period, ahead of the clock)."""
    if epoch is None or not math.isfinite(epoch) or not start.timestamp() <= epoch <= now.timestamp() + 3600:
        return None
    return datetime.fromtimestamp(epoch, UTC)


def _apply_fill(positions: tuple[Position, ...], fill: Fill) -> tuple[Position, ...]:
    signed = fill.quantity if fill.side.lower() == "buy" else -fill.quantity
    out: list[Position] = []
    found = False
    for p in positions:
        if p.symbol == fill.symbol and p.exchange == fill.exchange:
            found = True
            qty = p.quantity + signed
            if abs(qty) <= 1e-9 * max(abs(p.quantity), abs(signed)):
                qty = 0.0  # closed: no float residue left as a position
            if qty != 0.0:
                out.append(replace(p, quantity=qty))  # the snapshot's mark stays: one odd fill price never repaints it
        elif p.quantity != 0.0:
            out.append(p)
    if not found:
        out.append(Position(fill.symbol, fill.exchange, signed, fill.price))
    return tuple(out)
