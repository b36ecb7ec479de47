"""RiskSupervisor: the one object an execution service holds.

It starts the actors, answers `evaluate` (never raising: an unavailable gate
is a `GATE_UNAVAILABLE` block), and takes the state the execution side knows
(account snapshots, fills, order outcomes) and the upstream states (Risk v3
signal, ESS) in the same frozen messages the source actors send.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pykka

from actors.account_tracker import AccountTrackerActor
from actors.gate import GateActor
from actors.messages import ClearCooldown, Poll
from supervisor.clock import Clock, SystemClock
from supervisor.config import Config
from supervisor.core.messages import (
    AccountSnapshot,
    AccountState,
    EssSourceStatus,
    EssState,
    Fill,
    MessageSent,
    OrderOutcome,
    PriceSnapshot,
    RiskGateResult,
    RiskSignal,
)
from supervisor.core.reasons import ReasonCode as RC
from supervisor.journal.query import decision_json, explanations, series
from supervisor.journal.store import JOURNAL_NAME, Query, read_journal
from supervisor.logs import get_logger
from supervisor.ops.controls import ControlError, OverrideRecord
from supervisor.sources.upstream import (
    UpstreamError,
    check_outcome,
    check_signal,
    parse_account_snapshot,
    parse_prices,
    parse_risk_signal,
)
from supervisor.system import System

if TYPE_CHECKING:
    from supervisor.api.server import ApiServer

__all__ = ["RiskSupervisor"]

log = get_logger("riskgate.supervisor")
_real_monotonic = time.monotonic  # waiting for readiness is real time, whatever the clock


class RiskSupervisor:
    """Facade over the gate and its state actors (docs/api.md).

    State-reporting methods (all thread safe, none blocks on the gate):

    - `report_risk_signal(signal)`: a `RiskSignal` or a GlobalRiskSignal mapping.
    - `report_ess_state(state)`: an `EssState`; a halt reaches orders already
      queued at the gate. `report_ess_active(active, reason)` is a shorthand.
    - `report_account_snapshot(snapshot)`: an `AccountSnapshot` or a snapshot
      mapping; the tracker adds the day/week baselines and feeds the gate.
    - `report_fill(fill)`: moves positions and releases reserved notional.
    - `report_order_outcome(outcome)`: releases an order's reservation.
    - `report_message(account)`: a cancel or edit sent (the message rate).

    Operators: `halt(reason, by)` / `resume(by)`; `propose_override`,
    `approve_override` (a second operator), `revoke_override`, `overrides()`;
    `readiness()`, `wait_ready()`, `state()`, `decisions()`, `reload()`;
    `serve_api()` for the HTTP API (docs/http-api.md).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        http_transport: httpx.BaseTransport | None = None,
        poll_upstreams: bool = True,
        api: bool = False,
    ) -> None:
        """`poll_upstreams=False` starts only the gate and the account tracker:
        every state then comes through the `report_*` methods. `api=True`
        serves the HTTP API at `[api] host:port` from `start()` (see `serve_api`)."""
        self.clock: Clock = clock or SystemClock()
        # Every part, built in dependency order (supervisor.system); this is the handle on it.
        self._system = System(config, self.clock, http_transport, poll_upstreams, self, api)
        self._runtime = self._system.runtime
        self._decider = self._system.decider
        self.journal = self._system.journal
        self.state_reader = self._system.state_reader
        self.metrics = self._system.metrics
        self.controls = self._system.controls
        self.alerting = self._system.alerting
        self.shared = self._system.shared  # several instances (store.backend = "postgresql"), else None
        self.ess_board = self._runtime.board

    @property
    def config(self) -> Config:
        """The running configuration (a reload swaps it)."""
        return self._system.config

    @property
    def _gate(self) -> pykka.ActorRef[GateActor] | None:
        return self._runtime.supervisor.ref("gate")

    @property
    def _tracker(self) -> pykka.ActorRef[AccountTrackerActor] | None:
        return self._runtime.supervisor.ref("account_tracker")

    @property
    def gate_ref(self) -> pykka.ActorRef[GateActor] | None:
        """The running gate's actor ref (None before start), for operators and tests."""
        return self._gate

    def actor_ref(self, name: str) -> pykka.ActorRef[Any] | None:
        """A running actor by name: journal, gate, account_tracker, risk_v3_poller, ess_watcher."""
        return self._runtime.supervisor.ref(name)

    # -- life cycle ----------------------------------------------------------
    def start(self, wait_ready: float | None = None) -> RiskSupervisor:
        """Start every part in dependency order (the journal, the gate's owner, the
        tracker, the pollers, then the controls, health, alerts and API), ping each
        actor, poll every source once and then at the configured intervals; from
        then on dead actors are restarted and health is logged every
        `health.interval_s`. With `wait_ready` (seconds), wait that long at most
        for `wait_ready()`; still not ready, it logs `not_ready` with what is
        missing and returns (orders block until the state arrives)."""
        if self._system.start():  # StoreError: another riskgate uses this state folder
            atexit.register(self._stop_at_exit)
        if wait_ready is not None and not self.wait_ready(wait_ready):
            log.warning("not_ready", waited_s=wait_ready, missing=self.readiness())
        return self

    def stop(self) -> None:
        """Stop everything that started, in reverse order (the API first, the journal last)."""
        atexit.unregister(self._stop_at_exit)
        self._system.stop()

    def _stop_at_exit(self) -> None:
        """A program that ends without `stop()` (or `with`): its last decisions
        would die with the journal's daemon thread, unwritten. Stop it here."""
        gate = self._gate
        if gate is None or not gate.is_alive():
            return  # stopped some other way (its actors are gone)
        log.warning("supervisor_stopped_at_exit", effect="the program ended without stop(): stopping now")
        try:
            self.stop()
        except Exception as exc:  # noqa: BLE001 - the interpreter is ending: say why, do not raise
            log.error("supervisor_stop_at_exit_failed", error=repr(exc))

    def flush_journal(self, timeout: float = 10.0) -> int:
        """Write what the journal holds now and wait for it; how many records were written."""
        return self._system.flush_journal(timeout)

    def check_actors(self) -> None:
        """Run one supervision round now (heartbeats, restarts)."""
        self._runtime.supervisor.check()

    def log_health(self) -> None:
        """Emit the health events now (also done every `health.interval_s`)."""
        self._system.health_log.log_now()

    def poll_now(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask every source to poll once and wait for it; returns what each got."""
        out: dict[str, Any] = {}
        for name in ("ess_watcher", "risk_v3_poller", "account_tracker", "price_poller"):
            ref = self.actor_ref(name)
            if ref is not None and (name != "account_tracker" or self.config.accounts.snapshot_url):
                out[name] = ref.ask(Poll(), timeout=timeout)
        return out

    # -- readiness -----------------------------------------------------------------
    def readiness(self) -> list[str]:
        """What keeps the gate from deciding on fresh state (empty: ready)."""
        return self.state_reader.readiness()

    def tracker_alive(self) -> bool:
        tracker = self._tracker
        return tracker is not None and tracker.is_alive()

    @property
    def ready(self) -> bool:
        return not self.readiness()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once the gate runs and every source (Risk v3, ESS, each
        configured account) has delivered fresh state; False after `timeout`
        seconds of real time without that."""
        done = threading.Event()
        deadline = _real_monotonic() + timeout
        while not done.is_set():
            if not self.readiness():
                return True
            left = deadline - _real_monotonic()
            if left <= 0:
                return False
            done.wait(min(left, 0.02))  # state arrives on other threads; look again shortly
        return False  # pragma: no cover - the event is never set

    # -- operators ------------------------------------------------------------------
    def decision_rates(self) -> dict[str, Any]:
        """Decisions per second by decision and reason code over the last 15
        minutes, one point per 5 s sample (GET /v1/decisions/rates)."""
        return self.state_reader.rates_document()

    def state(self, timeout: float = 1.0) -> dict[str, Any]:
        """Sources, risk level, ESS, accounts against their limits, actors, journal,
        alerts, the operator halt and the overrides (GET /v1/state)."""
        return self._system.state(timeout)

    def explain(self, order_id: str) -> list[dict[str, Any]]:
        """Every decision on `order_id` in this instance's journal with the check that decided it
        and the events before it (GET /v1/decisions/explain). FileNotFoundError: no journal yet."""
        return explanations(Path(self.config.state.dir) / JOURNAL_NAME, order_id)

    def decision_series(self, span: str) -> dict[str, Any]:
        """Decisions per second over `span` ("15m", "1h", "24h") from the journal, with the halts as
        marks (GET /v1/decisions/series; the dashboard's chart). FileNotFoundError: no journal yet."""
        return series(Path(self.config.state.dir) / JOURNAL_NAME, self.clock.now(), span)

    def decisions(
        self,
        *,
        account: str | None = None,
        code: str | None = None,
        decision: str | tuple[str, ...] | None = None,
        since_us: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Recent decisions from the journal, newest first, as written so far (it
        flushes every `journal.flush_interval_s`; FileNotFoundError: none yet;
        JournalUnreadableError: the file is damaged)."""
        query = Query(since_us=since_us, account=account, code=code, decision=decision, limit=limit)
        rows = read_journal(Path(self.config.state.dir) / JOURNAL_NAME, lambda r: r.decisions(query), None)
        if rows is None:
            raise FileNotFoundError(f"no journal in {self.config.state.dir}")
        return [decision_json(row) for row in rows]

    def reload(self, path: str | Path | None = None, by: str = "api") -> dict[str, Any]:
        """Re-read the config file (default: where this config came from),
        validate it, and swap it in: the gate takes it between two evaluations.
        `ConfigError` lists every problem, including restart-only keys that
        changed; then nothing changes."""
        new, changed = self._system.reload(path, by)
        return {"sha256": new.digest, "origin": new.origin, "changed": changed}

    def serve_api(self, host: str | None = None, port: int | None = None) -> ApiServer:
        """Serve the HTTP API (docs/http-api.md) on its own thread; `port=0`
        picks a free port (see `.port`). Stopped by `stop()`."""
        return self._system.serve_api(host, port)

    @property
    def api_server(self) -> ApiServer | None:
        return self._system.api

    def __enter__(self) -> RiskSupervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- decisions (supervisor.deciding) ------------------------------------------
    def evaluate(self, order: Any, timeout: float | None = None) -> RiskGateResult:
        """Decide one order (an `OrderRequest` or a mapping). Never raises.

        The gate's decision runs here, on the caller's thread, holding the
        gate's lock (supervisor.gate); while the gate is suspended the order
        is handed to its actor. No answer within `timeout` (default
        `gate.evaluate_timeout_s`, at most 60 s) is a GATE_UNAVAILABLE block.
        """
        return self._decider.evaluate(order, timeout)

    async def evaluate_async(self, order: Any, timeout: float | None = None) -> RiskGateResult:
        """`evaluate` for asyncio: the loop is never blocked while the gate decides."""
        return await self._decider.evaluate_async(order, timeout)

    def reject(self, order: Any, why: str, code: RC = RC.INVALID_ORDER) -> RiskGateResult:
        """A block decided before the gate: INVALID_ORDER for input that cannot even
        be read as an order (say, JSON with a key twice), CLIENT_NOT_PERMITTED for an
        API client's order of an account its token is not for. Journaled like every
        other decision."""
        return self._decider.reject(order, why, code)

    # -- state from the execution side and the upstreams ---------------------
    def report_risk_signal(self, signal: RiskSignal | Mapping[str, Any]) -> bool:
        """Push a Risk v3 signal. A mapping is parsed (`UpstreamError` if unusable)."""
        signal = check_signal(signal) if isinstance(signal, RiskSignal) else parse_risk_signal(signal)
        self._runtime.link.tell(signal)  # stamped, remembered for the health ages, posted to the gate
        return True

    def report_prices(self, prices: PriceSnapshot | Mapping[str, Any]) -> bool:
        """Push the marks of the gate's price reference (what the [prices] source polls): a
        mapping in the prices contract, or a `PriceSnapshot`. Read as a polled answer is
        (`UpstreamError` when unusable; an unusable price is dropped, its symbol unpriced)."""
        if isinstance(prices, PriceSnapshot):
            prices = _prices_answer(prices)
        config = self.config
        self._runtime.link.tell(parse_prices(prices, config.symbols, config.prices.max_plausible_usd))
        return True

    def report_ess_state(self, state: EssState) -> bool:
        """Publish ESS readings (one per source in `state.sources`): on the board
        first (every decision reads it), then posted to the gate. A reading
        replaces only its own source's: a clear from one source never lifts
        another's halt. Its `active` is recomputed from the readings."""
        if not isinstance(state, EssState):
            raise UpstreamError(f"ESS state: expected an EssState, got {type(state).__name__}")
        self._runtime.publish_ess(state)
        return True

    def report_ess_active(self, active: bool | None, reason: str = "", source: str = "manual") -> bool:
        return self.report_ess_state(EssState.combine((EssSourceStatus(source, active, reason),)))

    def report_account_snapshot(
        self, snapshot: AccountSnapshot | Mapping[str, Any], timeout: float = 5.0
    ) -> AccountState | None:
        """Push an account snapshot; returns the state the gate now has (or
        None when the tracker is down). The gate has it queued before this returns."""
        if not isinstance(snapshot, AccountSnapshot):
            snapshot = parse_account_snapshot(snapshot)
        return self._ask_tracker(snapshot, timeout)

    def report_fill(self, fill: Fill, timeout: float = 5.0) -> AccountState | None:
        """Push a (partial) fill: positions move, reserved notional is released."""
        return self._ask_tracker(fill, timeout)

    def report_message(self, account: str) -> bool:
        """A cancel or edit sent for `account` (the guarded clients report theirs):
        it counts toward `gate.max_messages_per_s`."""
        named = isinstance(account, str)  # anything else (an untyped caller's value) is refused
        if named:
            self._runtime.link.tell(MessageSent(account))
        return named

    def report_order_outcome(self, outcome: OrderOutcome) -> bool:
        """Push an order's final outcome: its reservation is released. An
        outcome that cannot be read is refused (logged, False)."""
        try:
            outcome = check_outcome(outcome)
        except UpstreamError as exc:
            log.warning("outcome_refused", error=str(exc))
            return False
        self._runtime.link.tell(outcome)
        return True

    # -- emergency controls (docs/http-api.md; two operators for an override) ------------
    def on_halt(self, listener: Callable[[str], None]) -> None:
        """Call `listener(reason)` when a halt begins (any source), on the halt
        thread, never the gate's. The guarded clients subscribe themselves."""
        self._runtime.halts.subscribe(listener)

    def settle_halt_listeners(self, timeout: float = 10.0) -> bool:
        """Wait until every halt so far reached the listeners and they returned
        (cancel-on-halt is done then); False after `timeout`."""
        return self._runtime.halts.settle(timeout)

    def halt(self, reason: str, by: str, mode: str = "all") -> dict[str, Any]:
        """Halt every order (an ESS source of its own, persisted in `state.dir`), or with
        `mode="reduce_only"` every order that grows a position (REDUCE_ONLY_MODE): the next
        evaluation blocks. Halts stack, one per operator and mode. `ControlError` for a
        reason that is not text or an unknown mode."""
        return self.controls.halt(reason, by, mode)

    def resume(self, by: str, reason: str = "resumed") -> dict[str, Any]:
        """Lift every operator halt (only those: an ESS or kill-switch halt stays); the answer's
        `lifted` lists them. `ControlError` 409 when none holds."""
        return self.controls.resume(by, reason)

    def propose_override(self, account: str, reason: str, ttl_s: float, by: str) -> OverrideRecord:
        """Operator `by` proposes an override; another operator must approve it."""
        return self.controls.propose(account, reason, ttl_s, by)

    def approve_override(self, override_id: str, by: str) -> OverrideRecord:
        """A second operator approves: from now, for its ttl_s, reduce-only orders
        of that account pass halts, stale Risk v3 and CRITICAL (OVERRIDE_APPLIED)."""
        return self.controls.approve(override_id, by)

    def revoke_override(self, override_id: str, by: str) -> OverrideRecord:
        return self.controls.revoke(override_id, by)

    def overrides(self) -> list[OverrideRecord]:
        return self.controls.overrides()

    # -- the shadow (docs/replay.md) -------------------------------------------------------
    def shadow(self) -> dict[str, Any]:
        """The shadow config's state: its candidate, orders decided, disagreements by transition
        and the latest ones (`enabled` false without `[shadow] config`)."""
        return self._system.shadow.summary()

    def promote_shadow(self, by: str, reason: str) -> dict[str, Any]:
        """The shadow's candidate becomes the live config (its file replaces the live one, kept
        beside it as a backup, and is reloaded); journaled. `ControlError` 409 when it cannot."""
        return self._system.promote_shadow(by, reason)

    def lockouts(self) -> dict[str, list[dict[str, Any]]]:
        """Every locked account's lockouts (code, cause, since, until, left_s, lifts), from /v1/state."""
        accounts = self.state()["accounts"]
        return {name: row["lockouts"] for name, row in accounts.items() if row.get("lockouts")}

    def clear_lockout(self, account: str, reason: str, by: str) -> dict[str, Any]:
        """An operator lifts an account's cooldown (journaled; two operators with
        `overrides.lockout_clear_two_person`). `ControlError` when there is none to lift."""

        def clear(name: str, why: str) -> dict[str, Any]:
            tracker = self._tracker
            if tracker is None:
                raise ControlError(503, "the account tracker is not running")
            try:
                return cast("dict[str, Any]", tracker.ask(ClearCooldown(name, by, why), timeout=5.0))
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                raise ControlError(503, f"the account tracker did not answer: {type(exc).__name__}") from exc

        return self.controls.clear_lockout(account, reason, by, clear)

    def _ask_tracker(self, message: object, timeout: float) -> AccountState | None:
        tracker = self._tracker
        if tracker is None:
            log.warning("state_dropped_tracker_not_started", message_type=type(message).__name__)
            return None
        try:
            return cast("AccountState | None", tracker.ask(message, timeout=timeout))
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            log.warning("state_dropped_tracker_unavailable", message_type=type(message).__name__, error=repr(exc))
            return None

    # -- health ----------------------------------------------------------------
    def health(self, timeout: float = 1.0) -> dict[str, Any]:
        """Each actor's row (alive, restarts, last_error, state_age_s), the gate's
        decision counts since the last health log, and the ESS state."""
        return self._system.health(timeout)


def _prices_answer(snap: PriceSnapshot) -> dict[str, Any]:
    """A `PriceSnapshot` in the prices contract, to be read as a polled answer is: its dropped
    symbols as nulls (unpriced), its own times kept."""
    stamped = snap.timestamp
    if not isinstance(stamped, datetime):
        raise UpstreamError(f"timestamp: expected a datetime, got {type(stamped).__name__}")
    if not isinstance(snap.prices, Mapping):
        raise UpstreamError(f"prices: expected a mapping, got {type(snap.prices).__name__}")
    stamps = snap.stamps if isinstance(snap.stamps, Mapping) else {}
    prices: dict[Any, Any] = {}
    for symbol, price in snap.prices.items():
        own = stamps.get(symbol)
        prices[symbol] = {"price": price, "timestamp": own.isoformat()} if isinstance(own, datetime) else price
    for symbol in snap.dropped if isinstance(snap.dropped, tuple) else ():
        prices[symbol] = None
    return {"timestamp": stamped.isoformat(), "prices": prices}
