"""What the running gate knows, for people and probes: the state document,
readiness, and decision rates.

`StateReader` reads the runtime from outside the decision path: source ages
from the gate link and the ESS board (no gate involvement), per-account
figures from one `GateView` ask, and the decision counters the gate keeps
(`DecisionRates` samples them on a timer, so "decisions in the last minute"
costs the gate nothing).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from supervisor.channels.gate_counters import GateCounters
from supervisor.clock import Clock, Timer
from supervisor.config import Config
from supervisor.core.checks import Denial, account_denial, market_blockers
from supervisor.core.lockouts import Lockout, account_lockouts, most_binding, repeat_lockout
from supervisor.core.messages import ReduceOnlyMode, RiskSignal
from supervisor.core.reasons import ReasonCode as RC
from supervisor.gate import GateView
from supervisor.ops.controls import HALT_MODES, halts_of
from supervisor.runtime.wiring import Runtime

__all__ = ["DecisionRates", "StateReader", "banner", "reduce_only_reason"]

RISK_LEVELS = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class DecisionRates:
    """Samples the gate's cumulative decision counters every `interval_s`
    (on the injected clock) and keeps `keep_s` of them: counts over a recent
    window are the difference between now and the sample that far back."""

    def __init__(self, counters: GateCounters, clock: Clock, interval_s: float = 5.0, keep_s: float = 900.0) -> None:
        self._counters = counters
        self._clock = clock
        self._interval_s = interval_s
        self._keep_s = keep_s
        self._samples: deque[tuple[float, dict[tuple[str, str, str], int]]] = deque(maxlen=int(keep_s / interval_s) + 2)
        self._lock = threading.Lock()
        self._timer: Timer | None = None

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def start(self) -> None:
        if self._timer is None:
            self.sample()
            self._timer = self._clock.call_every(self._interval_s, self.sample, "decision-rates")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def sample(self) -> None:
        decisions = self._counters.snapshot()[0]
        with self._lock:
            self._samples.append((self._clock.monotonic(), decisions))

    def series(self) -> list[tuple[float, float, dict[tuple[str, str], int]]]:
        """Decisions per (decision, code) in each sampling interval that ended
        within `keep_s`, oldest first, and the part interval up to now:
        (start, end, counts), monotonic."""
        now = self._clock.monotonic()
        current = self._counters.snapshot()[0]
        with self._lock:
            samples = [*self._samples, (now, current)]
        out: list[tuple[float, float, dict[tuple[str, str], int]]] = []
        for (start, before), (end, after) in itertools.pairwise(samples):
            if end <= start or now - end > self._keep_s:
                continue
            counts: dict[tuple[str, str], int] = {}
            for (decision, code, _), n in after.items():
                delta = n - before.get((decision, code, _), 0)
                if delta > 0:
                    counts[(decision, code)] = counts.get((decision, code), 0) + delta
            out.append((start, end, counts))
        return out

    def since(self, window_s: float) -> dict[tuple[str, str, str], int]:
        """Decisions per (decision, code, account) over about the last `window_s`
        (from the newest sample at least that old, else the oldest one)."""
        now = self._clock.monotonic()
        current = self._counters.snapshot()[0]
        base: Mapping[tuple[str, str, str], int] | None = None
        with self._lock:
            for when, counts in self._samples:
                if now - when >= window_s:
                    base = counts
                    continue
                if base is None:
                    base = counts  # nothing that old yet: since the oldest sample
                break
        base = base or {}
        return {key: n - base.get(key, 0) for key, n in current.items() if n - base.get(key, 0) > 0}


def reduce_only_reason(runtime: Runtime) -> str | None:
    """The operators' reduce-only halt as the gate link last told the gate (its reason), or None:
    what the gate applies, read without asking it."""
    latest = runtime.link.latest("reduce_only_mode")
    return latest.message.reason if latest is not None and isinstance(latest.message, ReduceOnlyMode) else None


class StateReader:
    def __init__(
        self,
        runtime: Runtime,
        clock: Clock,
        rates: DecisionRates | None,
        halts: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """`halts`: the operator halt document (`OperatorControls.halt_status`), read under the
        controls' lock, never the gate's."""
        self._runtime = runtime
        self._clock = clock
        self._rates = rates
        self._halts = halts
        # Several instances: the keeper's last round, (confirmed age, error), set by the system.
        self.shared_status: Callable[[], tuple[float | None, str | None]] | None = None
        self.shared_describe: Callable[[], dict[str, Any]] | None = None  # instances, leases, the shared halt

    @property
    def config(self) -> Config:
        return self._runtime.config  # the reloaded one, after a reload

    # -- sources ------------------------------------------------------------------
    def _sources(self, now: float) -> dict[str, dict[str, Any]]:
        rt, cfg = self._runtime, self.config
        errors = dict(rt.journal.source_errors)
        risk_age = rt.link.age("risk_v3", now=now)
        current = rt.board.current
        ess_age = None if current is None else now - current.received
        ess_errors = {s: e for s, e in errors.items() if s.startswith("ess")}

        def last_error(found: tuple[datetime, str, str] | None) -> dict[str, str] | None:
            if found is None:
                return None
            return {"since": _iso(found[0]), "cause": found[1], "detail": found[2]}

        out: dict[str, dict[str, Any]] = {
            "risk_v3": {
                "fresh": risk_age is not None and risk_age <= cfg.risk_v3.max_age_s,
                "age_s": _round(risk_age),
                "max_age_s": cfg.risk_v3.max_age_s,
                "last_error": last_error(errors.get("risk_v3")),
            },
            "ess": {
                "fresh": ess_age is not None and ess_age <= cfg.ess.max_age_s,
                "age_s": _round(ess_age),
                "max_age_s": cfg.ess.max_age_s,
                "last_error": last_error(ess_errors.get("ess_http")),
            },
        }
        if cfg.prices.enabled:
            prices_age = rt.link.age("prices", now=now)
            out["prices"] = {
                "fresh": prices_age is not None and prices_age <= cfg.prices.max_age_s,
                "age_s": _round(prices_age),
                "max_age_s": cfg.prices.max_age_s,
                "last_error": last_error(errors.get("prices")),
                "per_symbol": True,  # stale: the symbols it covers block opening orders, the rest trade
            }
        if self.shared_status is not None:
            age, error = self.shared_status()
            out["store"] = {
                "fresh": age is not None and age <= cfg.store.max_age_s,
                "age_s": _round(age),
                "max_age_s": cfg.store.max_age_s,
                "last_error": None if error is None else {"since": None, "cause": "store", "detail": error},
            }
        for name in cfg.accounts.accounts:
            age = rt.link.age("account", name, now=now)
            out[f"account:{name}"] = {
                "fresh": age is not None and age <= cfg.accounts.max_age_s,
                "age_s": _round(age),
                "max_age_s": cfg.accounts.max_age_s,
                "last_error": last_error(errors.get(f"account:{name}")),
            }
        return out

    def sources_now(self) -> dict[str, dict[str, Any]]:
        """Each source: fresh, age_s, max_age_s, last_error (no gate ask)."""
        return self._sources(self._clock.monotonic())

    def ess_active(self) -> bool | None:
        current = self._runtime.board.current
        return None if current is None else current.state.active

    def reduce_only(self) -> str | None:
        """The reduce-only halt's reason while one holds (orders that grow a position block), else None."""
        return reduce_only_reason(self._runtime)

    def operator_halts(self) -> dict[str, int]:
        """How many operator halts hold, by mode ("all", "reduce_only"): they stack, one per operator and mode."""
        counts = dict.fromkeys(HALT_MODES, 0)
        for halt in halts_of(self._halts() if self._halts is not None else {"active": False}):
            counts[halt["mode"]] += 1
        return counts

    def actor_rows(self) -> list[dict[str, Any]]:
        return self._runtime.supervisor.rows()

    def wall(self) -> datetime:
        """The wall clock's now (the injected clock)."""
        return self._clock.now()

    def gate_view(self, timeout: float = 1.0) -> GateView | None:
        return self._runtime.gate_view(timeout)

    def journal_figures(self) -> dict[str, Any]:
        journal = self._runtime.journal
        return {
            "enabled": self.config.journal.enabled,
            "queued": len(journal),
            "written": journal.written,
            "dropped": journal.dropped,
            "problem": journal.problem,
            "blocking": journal.blocking,
        }

    def rates_document(self) -> dict[str, Any]:
        """`GET /v1/decisions/rates`: decisions per second by decision and reason
        code in each sampling interval of the last 15 minutes (UTC times)."""
        if self._rates is None:
            return {"interval_s": None, "points": []}
        now, wall = self._clock.monotonic(), self._clock.now()

        def at(mono: float) -> str:
            return _iso(wall - timedelta(seconds=max(0.0, now - mono)))

        points = []
        for start, end, counts in self._rates.series():
            span = end - start
            points.append(
                {
                    "start": at(start),
                    "end": at(end),
                    "seconds": round(span, 3),
                    "per_s": {f"{d}/{c}": round(n / span, 3) for (d, c), n in sorted(counts.items())},
                }
            )
        return {"interval_s": self._rates.interval_s, "points": points}

    def blockers(self, signal: RiskSignal | None = None, received: float | None = None) -> list[Denial]:
        """What blocks every order that opens or grows a position now (the gate's
        checks 0-5 on the state it was sent): `signal`/`received` as the gate
        holds them, else the latest sent through the link."""
        rt = self._runtime
        if received is None:
            latest = rt.link.latest("risk_v3")
            signal = latest.message if latest is not None and isinstance(latest.message, RiskSignal) else None
            received = latest.sent if latest is not None else 0.0
        current = rt.board.current
        return market_blockers(
            journal_blocking=rt.journal.blocking,
            ess=current.state if current is not None else None,
            ess_received=current.received if current is not None else 0.0,
            signal=signal,
            signal_received=received,
            config=self.config,
            now=self._clock.monotonic(),
            wall=self._clock.now(),
        )

    def readiness(
        self, sources: dict[str, dict[str, Any]] | None = None, blockers: list[Denial] | None = None
    ) -> list[str]:
        """What keeps the gate from deciding on fresh state; empty when ready.
        `sources`: as `sources_now()` returned them (read now when not given);
        `blockers`: as `blockers()` returned them (likewise)."""
        missing = []
        gate = self._runtime.supervisor.ref("gate")
        if gate is None or not gate.is_alive():
            missing.append("gate: not running")
        for name, src in (sources if sources is not None else self.sources_now()).items():
            if src.get("per_symbol"):
                continue  # the prices: a stale one blocks its symbols (the document's "prices"), not the gate
            if src["age_s"] is None:
                missing.append(f"{name}: no state yet")
            elif not src["fresh"]:
                missing.append(f"{name}: stale ({src['age_s']:.1f} s > max_age_s {src['max_age_s']:g} s)")
        # Fresh by age, yet unusable: a signal stamped long ago or in the future, an unreadable ESS source.
        for denial in blockers if blockers is not None else self.blockers():
            if denial.code is RC.RISK_STATE_STALE and not any(m.startswith("risk_v3:") for m in missing):
                missing.append(f"risk_v3: {denial.reason}")
            elif denial.code is RC.ESS_STATE_STALE and not any(m.startswith("ess:") for m in missing):
                missing.append(f"ess: {denial.reason}")
        blocking = self._runtime.journal.blocking
        if blocking is not None:
            missing.append(f"journal: {blocking}")
        return missing

    # -- the document -------------------------------------------------------------------
    def document(self, timeout: float = 1.0) -> dict[str, Any]:
        """`GET /v1/state`: sources, risk level, ESS, accounts, actors, journal."""
        rt, cfg = self._runtime, self.config
        view = rt.gate_view(timeout)
        now = self._clock.monotonic() if view is None else view.monotonic
        sources = self._sources(now)
        signal = view.signal if view is not None else None
        risk = sources["risk_v3"]
        risk.update(
            risk_level=signal.risk_level if signal else None,
            signal_time=_iso(signal.timestamp) if signal else None,
            ess_action_required=signal.ess_action_required if signal else None,
            ess_tier_recommendation=signal.ess_tier_recommendation if signal else None,
            overall_risk_score=signal.overall_risk_score if signal else None,
        )
        current = rt.board.current
        ess = current.state if current else None
        since = rt.board.active_since
        wall = self._clock.now()
        sources["ess"].update(
            active=ess.active if ess else None,
            reason=ess.reason if ess else None,
            active_since=_iso(wall - timedelta(seconds=max(0.0, now - since))) if since is not None else None,
            readings=[{"source": s.source, "active": s.active, "detail": s.detail} for s in ess.sources] if ess else [],
        )
        blockers = self.blockers(signal, view.signal_received if view is not None else None)
        missing = self.readiness(sources, blockers)  # the same reading the document shows
        accounts = self._accounts(view, sources)
        blocked = {name: row["blocked_by"] for name, row in accounts.items() if row["blocked_kind"] == "fail_closed"}
        locked = [name for name, row in accounts.items() if row["lockouts"]]
        prices = self._prices(view, now, wall, sources.get("prices"))
        said = banner(sources, view is not None, blockers, blocked, locked, view.reduce_only_mode if view else None)
        said["symbols_paused"] = [symbol for symbol, p in prices.items() if p["pause"]]
        said["symbols_unpriced"] = [symbol for symbol, p in prices.items() if not p["fresh"] and not p["pause"]]
        return {
            "time": _iso(wall),
            "banner": said,
            "ready": not missing,
            "not_ready": missing,
            "config": {"origin": cfg.origin, "sha256": cfg.digest or None},
            "risk_level": signal.risk_level if signal else None,
            "ess_active": ess.active if ess else None,
            "sources": sources,
            "accounts": accounts,
            "prices": prices,
            "gate": {
                "alive": view is not None,
                "reservations": view.reservations if view else None,
            },
            "journal": self.journal_figures(),
            "actors": rt.supervisor.rows(),
        }

    def _prices(
        self, view: GateView | None, now: float, wall: datetime, source: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The gate's price reference per symbol: price, age, fresh, and a spike pause (until, why).
        The prices source's own row says fresh only for what the gate took up (an answer it
        refused, stamped ahead or behind, is no fresh source), and why it refused the last."""
        cfg = self.config
        if source is not None and view is not None:
            taken = now - view.prices_accepted
            source["fresh"] = bool(source["fresh"]) and taken <= cfg.prices.max_age_s
            if view.prices_refused:
                source["last_error"] = {"since": None, "cause": "refused", "detail": view.prices_refused}
        held = view.prices if view is not None else {}
        out: dict[str, Any] = {}
        if not cfg.prices.enabled:
            return out
        for symbol in sorted(set(held) | cfg.priced_symbols):
            found = held.get(symbol)
            if found is None:
                out[symbol] = {"price": None, "age_s": None, "fresh": False, "paused_until": None, "pause": None}
                continue
            price, fresh_until, paused_until, why, stamped = found
            paused = now < paused_until
            out[symbol] = {
                "price": price,
                "age_s": _round((wall - stamped).total_seconds()),
                "fresh": now <= fresh_until,
                "paused_until": _iso(wall + timedelta(seconds=paused_until - now)) if paused else None,
                "pause": why if paused else None,
            }
        return out

    def _accounts(self, view: GateView | None, sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
        cfg = self.config
        wall = self._clock.now()
        recent = self._rates.since(60.0) if self._rates is not None else None
        out: dict[str, Any] = {}
        for name, acct in cfg.accounts.accounts.items():
            profile = cfg.profiles[acct.capital_profile]
            exchange = cfg.exchanges.get(acct.exchange)
            row: dict[str, Any] = {
                "exchange": acct.exchange,
                "capital_profile": acct.capital_profile,
                "has_state": False,
                "fresh": sources[f"account:{name}"]["fresh"],
                "age_s": sources[f"account:{name}"]["age_s"],
                "max_daily_loss_pct": profile.max_daily_loss_pct,
                "max_weekly_loss_pct": profile.max_weekly_loss_pct,
                "max_notional_usd": acct.max_notional_usd,
                "exchange_max_notional_usd": exchange.max_notional_usd if exchange else None,
                "max_open_positions": profile.max_open_positions,
                "allowed_leverage": profile.allowed_leverage,
            }
            seen = view.accounts.get(name) if view is not None else None
            denial = account_denial(
                name,
                seen.state if seen is not None else None,
                seen.received if seen is not None else 0.0,
                seen.usable if seen is not None else False,
                view.monotonic if view is not None else self._clock.monotonic(),
                cfg,
            )
            locks = account_lockouts(seen.state, profile, cfg.periods, wall) if seen is not None else ()
            if view is not None and view.repeat_latches:
                gate = cfg.gate
                locks += tuple(
                    repeat_lockout(side, qty, symbol, price, wall + timedelta(seconds=until - view.monotonic),
                                   gate.max_repeats, gate.duplicate_window_s)
                    for (account, symbol, side, qty, price), until in view.repeat_latches.items()
                    if account == name
                )  # fmt: skip
            row["lockouts"] = [lockout_json(lock, wall) for lock in locks]
            # What blocks this account's orders that open or grow a position: its own state failing
            # closed (every order blocks: why), else the lockout that holds longest (its code).
            binding = most_binding(locks)
            if denial is not None:
                row.update(blocked_by=denial.reason, blocked_kind="fail_closed")
            elif binding is not None:
                row.update(blocked_by=binding.code.value, blocked_kind="lockout")
            else:
                row.update(blocked_by=None, blocked_kind=None)
            row["new_risk_allowed"] = row["blocked_by"] is None
            if seen is not None:
                s = seen.state
                row.update(
                    has_state=True,
                    usable=seen.usable,
                    problem=s.problem,
                    baseline_unknown=list(s.baseline_unknown),
                    equity_usd=s.equity,
                    day_start_equity_usd=s.day_start_equity,
                    week_start_equity_usd=s.week_start_equity,
                    day_pnl_pct=_pct(s.equity, s.day_start_equity),
                    week_pnl_pct=_pct(s.equity, s.week_start_equity),
                    gross_exposure_usd=round(seen.gross_notional, 2),
                    reserved_usd=round(seen.reserved_usd, 2),
                    exposure_with_reservations_usd=round(seen.gross_notional + seen.reserved_usd, 2),
                    open_positions=seen.open_positions,
                )
            if view is not None and name in view.overrides:
                override_id, expiry = view.overrides[name]
                left = expiry - view.monotonic
                if left > 0:
                    row["override"] = {"id": override_id, "s_left": round(left, 1)}
            if recent is not None:
                by_code: dict[str, int] = {}
                for (_, code, account), n in recent.items():
                    if account == name:
                        by_code[code] = by_code.get(code, 0) + n
                row["decisions_last_minute"] = by_code
            out[name] = row
        return out


def lockout_json(lock: Lockout, wall: datetime) -> dict[str, Any]:
    """A lockout as /v1/state shows it: times in UTC ISO 8601, and the seconds left."""
    return {
        "code": lock.code.value,
        "cause": lock.cause,
        "since": _iso(lock.since) if lock.since is not None else None,
        "until": _iso(lock.until) if lock.until is not None else None,
        "left_s": round((lock.until - wall).total_seconds(), 1) if lock.until is not None else None,
        "lifts": lock.lifts,
    }


def _stale_detail(name: str, src: dict[str, Any]) -> tuple[str, float | None] | None:
    """How a source is stale by age, or None when its age is within its limit."""
    if src["age_s"] is None:
        return f"{name}: no state yet", None
    if not src["fresh"]:
        stale_for = round(src["age_s"] - src["max_age_s"], 1)
        why = f"stale for {stale_for:.1f} s (last state {src['age_s']:.1f} s old, limit {src['max_age_s']:g} s)"
        return f"{name}: {why}", stale_for
    return None


def _cause(
    source: str, detail: str, stale_for_s: float | None = None, since: str | None = None, kind: str = "fail_closed"
) -> dict[str, Any]:
    return {"source": source, "kind": kind, "detail": detail, "stale_for_s": stale_for_s, "since": since}


def banner(
    sources: dict[str, dict[str, Any]],
    gate_alive: bool,
    blockers: list[Denial],
    accounts_blocked: Mapping[str, str] | None = None,
    accounts_locked: list[str] | None = None,
    reduce_only: str | None = None,
) -> dict[str, Any]:
    """The one-line verdict a person reads first, from the gate's own checks 0-5
    (`blockers`, in its order): the first decides FAIL-CLOSED (the gate does not
    answer, the journal blocks, ESS or Risk v3 state is stale or unusable) or
    HALTED (an ESS source, the kill switch, the operator halt; Risk v3 CRITICAL
    or requiring ESS action); none: TRADING. `causes` name the source and why;
    `also` lists what would block next; `accounts_blocked` the accounts whose
    own state makes them fail closed, `accounts_locked` those a lockout holds
    (new risk blocked: a loss limit, drawdown, cooldown, unknown baseline).
    An operator's reduce-only halt (`reduce_only`, its reason) makes it
    REDUCE-ONLY when nothing stricter holds."""
    found: list[tuple[str, list[dict[str, Any]]]] = []
    if not gate_alive:
        found.append(("FAIL-CLOSED", [_cause("gate", "gate: not answering")]))
    ess, risk = sources["ess"], sources["risk_v3"]
    for denial in blockers:
        code = denial.code
        if code is RC.JOURNAL_UNAVAILABLE:
            found.append(("FAIL-CLOSED", [_cause("journal", f"journal: {denial.reason}")]))
        elif code in (RC.ESS_STATE_STALE, RC.RISK_STATE_STALE):
            name, src = ("ess", ess) if code is RC.ESS_STATE_STALE else ("risk_v3", risk)
            by_age = _stale_detail(name, src)
            detail, stale_for = by_age if by_age is not None else (f"{name}: {denial.reason}", None)
            found.append(("FAIL-CLOSED", [_cause(name, detail, stale_for)]))
        elif code is RC.ESS_HALT_ACTIVE:
            since = ess.get("active_since")
            halts = [
                _cause(f"ess/{r['source']}", r["detail"], since=since, kind="halt")
                for r in ess.get("readings", ())
                if r["active"] is True
            ]
            found.append(("HALTED", halts or [_cause("ess", denial.reason, since=since, kind="halt")]))
        else:  # GLOBAL_RISK_CRITICAL, RISK_V3_ESS_ACTION_REQUIRED
            found.append(("HALTED", [_cause("risk_v3", f"{denial.reason}: only reduce-only orders pass", kind="halt")]))
    store = sources.get("store")
    if store is not None and not store["fresh"]:
        age = store["age_s"]
        shown = "never confirmed" if age is None else f"not confirmed for {age:.1f} s"
        detail = f"store: shared state {shown}: opening orders block (SHARED_STATE_STALE)"
        found.append(("FAIL-CLOSED", [_cause("store", detail)]))
    if reduce_only is not None:
        found.append(("REDUCE-ONLY", [_cause("ess/operator_halt", f"reduce-only {reduce_only}: orders that grow a "
                                             "position block (REDUCE_ONLY_MODE)", kind="halt")]))  # fmt: skip
    state, causes = found[0] if found else ("TRADING", [])
    also = [cause for _, rest in found[1:] for cause in rest]
    blocked = sorted((accounts_blocked or {}).items())
    return {
        "state": state,
        "causes": causes,
        "also": also,
        "accounts_blocked": [name for name, _ in blocked],
        "accounts_locked": sorted(accounts_locked or []),
    }


def _pct(equity: float, start: float) -> float | None:
    return round((equity - start) / start * 100.0, 4) if start > 0 else None
