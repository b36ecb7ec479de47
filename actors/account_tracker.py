"""AccountTrackerActor: per-account equity, positions and period baselines.

It turns account snapshots (pushed through the facade, or polled from
`{accounts.snapshot_url}/accounts/{name}/snapshot`) and fills into
`AccountState` messages for the gate. The equity at the start of the day and
of the week is the last equity seen before the period began (or the first
seen in it). Baselines and the last equity live in SQLite under `[state] dir`,
so a restart mid-day keeps the day's baseline and a loss limit stays hit.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import httpx
from cachetools import LRUCache

from actors.base import PolledSourceActor
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.gate_link import GateLink
from supervisor.http import FailureLog, FetchError, fetch_json
from supervisor.logs import get_logger
from supervisor.messages import AccountSnapshot, AccountState, Fill, Position
from supervisor.periods import day_start, week_start
from supervisor.upstream import UpstreamError, check_fill, check_snapshot, parse_account_snapshot
from supervisor.values import plain_str, shorten

__all__ = ["AccountTrackerActor", "BaselineStore"]

log = get_logger("riskgate.accounts")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS baselines (
    account TEXT NOT NULL, period TEXT NOT NULL, period_start TEXT NOT NULL, equity REAL NOT NULL,
    PRIMARY KEY (account, period));
CREATE TABLE IF NOT EXISTS last_equity (
    account TEXT PRIMARY KEY, equity REAL NOT NULL, at TEXT NOT NULL);
"""


@dataclass(slots=True)
class Baseline:
    period_start: datetime
    equity: float


class BaselineStore:
    """Period baselines and last equity, in one SQLite file. Used from one thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def load(self) -> tuple[dict[tuple[str, str], Baseline], dict[str, float]]:
        baselines = {
            (account, period): Baseline(datetime.fromisoformat(start), equity)
            for account, period, start, equity in self._db.execute(
                "SELECT account, period, period_start, equity FROM baselines"
            )
        }
        last = dict(self._db.execute("SELECT account, equity FROM last_equity").fetchall())
        return baselines, last

    def save_baseline(self, account: str, period: str, baseline: Baseline) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?)",
            (account, period, baseline.period_start.isoformat(), baseline.equity),
        )

    def save_last_equity(self, account: str, equity: float, at: datetime) -> None:
        self._db.execute("INSERT OR REPLACE INTO last_equity VALUES (?, ?, ?)", (account, equity, at.isoformat()))

    def close(self) -> None:
        self._db.close()


class AccountTrackerActor(PolledSourceActor):
    def __init__(
        self,
        config: Config,
        clock: Clock,
        gate: GateLink,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(clock, gate, transport)
        self._config = config
        self._store: BaselineStore | None = None
        self._latest: dict[str, AccountState] = {}
        self._last_equity: dict[str, float] = {}
        self._baselines: dict[tuple[str, str], Baseline] = {}
        self._poll_failures: dict[str, FailureLog] = {}
        self._problems: dict[str, str] = {}  # account -> why its latest snapshot was unusable
        self.refused_snapshots = 0
        self._refused_names: LRUCache[str, bool] = LRUCache(maxsize=256)

    # -- life cycle --------------------------------------------------------------
    def on_start(self) -> None:
        self._store = BaselineStore(self._config.state.dir / "accounts.sqlite")
        self._baselines, self._last_equity = self._store.load()
        # After a restart, fills keep applying to the positions the gate already has.
        self._latest = {state.account: state for state in self._gate.latest_accounts()}
        if self._baselines:
            log.info("baselines_loaded", path=str(self._store.path), count=len(self._baselines))
        if self._config.accounts.snapshot_url:
            self.open_client(self._config.accounts.timeout_s)

    def release_resources(self) -> None:
        super().release_resources()
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_message(self, message: object) -> object:
        if isinstance(message, AccountSnapshot):
            return self._on_snapshot(message)
        if isinstance(message, Fill):
            return self._on_fill(message)
        log.warning("account_tracker_unknown_message", message_type=type(message).__name__)
        return None

    # -- polling -------------------------------------------------------------------
    def poll(self) -> int:
        """Fetch every configured account's snapshot once; returns how many were usable."""
        if self._client is None:
            return 0
        good = 0
        for name in self._config.accounts.accounts:
            failures = self._poll_failures.setdefault(name, FailureLog("riskgate.accounts", f"account:{name}"))
            url = f"{self._config.accounts.snapshot_url}/accounts/{name}/snapshot"
            try:
                snapshot = parse_account_snapshot(fetch_json(self._client, url), self._config.accounts.max_plausible_usd)
                if snapshot.account != name:
                    raise UpstreamError(f"account: asked for {name!r}, got {snapshot.account!r}")
            except FetchError as exc:
                failures.failed(exc.kind, exc.detail, url=url)
                continue
            except UpstreamError as exc:
                failures.failed("unparsable", str(exc), url=url)
                continue
            failures.succeeded(url=url)
            self._on_snapshot(snapshot)
            good += 1
        return good

    # -- state ---------------------------------------------------------------------
    def _baseline(self, period: str, account: str, start: datetime, equity: float) -> float:
        key = (account, period)
        current = self._baselines.get(key)
        if current is None or current.period_start < start:
            # The last equity seen before the period began is its opening equity.
            last = self._last_equity.get(account)
            base = last if last is not None else equity
            current = self._baselines[key] = Baseline(start, base)
            if self._store is not None:
                self._store.save_baseline(account, period, current)
            log.info("period_baseline_set", period=period, account=account, period_start=start.isoformat(), equity=base)
        return current.equity

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
        except UpstreamError as exc:
            return self._unusable(snap.account, str(exc))
        now = self._clock.now()
        day = self._baseline("day", snap.account, day_start(now, self._config.periods), snap.equity)
        week = self._baseline("week", snap.account, week_start(now, self._config.periods), snap.equity)
        state = AccountState(
            account=snap.account,
            equity=snap.equity,
            positions=tuple(p for p in snap.positions if p.quantity != 0.0),
            day_start_equity=day,
            week_start_equity=week,
        )
        self._latest[snap.account] = state
        self._problems.pop(snap.account, None)
        self._last_equity[snap.account] = snap.equity
        if self._store is not None:
            self._store.save_last_equity(snap.account, snap.equity, now)
        self._gate.tell(state)
        return state

    def _unusable(self, account: str, problem: str) -> AccountState:
        """The account fails closed until a usable snapshot: the gate keeps the
        last known positions (they still count against the exchange's cap)."""
        log.warning("snapshot_unusable", account=account, problem=problem)
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
        if fill.account not in self._config.accounts.accounts:
            log.warning("fill_refused", error=f"account {shorten(fill.account, 40)} is not configured")
            return None
        state = self._latest.get(fill.account)
        if state is not None:
            state = replace(
                state,
                positions=_apply_fill(state.positions, fill),
                refreshed=False,
                problem=self._problems.get(fill.account),
            )
            self._latest[fill.account] = state
            self._gate.tell(state)
        else:
            log.warning("fill_before_snapshot", account=fill.account, order_id=fill.order_id)
        # After the new positions, so the fill's notional is never counted by neither.
        self._gate.tell(fill)
        return state

    def latest(self) -> list[AccountState]:
        """Every account's latest state (re-sent to a restarted gate)."""
        return list(self._latest.values())


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
            p = replace(p, quantity=qty, mark_price=fill.price)
        if p.quantity != 0.0:
            out.append(p)
    if not found:
        out.append(Position(fill.symbol, fill.exchange, signed, fill.price))
    return tuple(out)
