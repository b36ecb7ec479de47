"""Alerting: the alerts actor (actors.alerts), its webhook workers and its timer.

`observe` gathers what the actor looks at, from outside the decision path:
source ages from the gate link and the ESS board, the supervisor's rows, the
journal's figures, the `GateCounters` the gate already keeps, and one
`GateView` read with a short timeout for the accounts' PnL. `Alerting` is the
start/stop pair the facade holds: it starts the actor and the webhook workers,
and sends a `Tick` on the injected clock (skipping a tick while the previous
one is still running, so ticks never pile up).
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable
from typing import Any

import pykka

from actors.alerts import AlertsActor
from actors.messages import Tick
from supervisor.alerts.rules import AccountFigures, Observation, PriceReading, SourceReading
from supervisor.alerts.webhooks import WebhookSender
from supervisor.clock import Clock, Timer
from supervisor.config import Config
from supervisor.core.reasons import ReasonCode as RC
from supervisor.gate import GateView
from supervisor.logs import get_logger
from supervisor.ops.state import StateReader, reduce_only_reason
from supervisor.runtime.wiring import Runtime

__all__ = ["Alerting", "observe"]

log = get_logger("riskgate.alerts")

VIEW_TIMEOUT_S = 0.5  # the accounts' figures: one gate ask per tick, never a long wait


def _pct(equity: float, start: float) -> float | None:
    return (equity - start) / start * 100.0 if start > 0 else None


def observe(runtime: Runtime, clock: Clock, view: GateView | None) -> Observation:
    """What the gate and its sources show now (no gate ask here: `view` is passed in)."""
    cfg = runtime.config
    now = clock.monotonic()
    current = runtime.board.current
    sources = [
        SourceReading("risk_v3", runtime.link.age("risk_v3", now=now), cfg.risk_v3.max_age_s),
        SourceReading("ess", None if current is None else now - current.received, cfg.ess.max_age_s),
    ]
    sources += [
        SourceReading(f"account:{name}", runtime.link.age("account", name, now=now), cfg.accounts.max_age_s)
        for name in cfg.accounts.accounts
    ]
    rows = runtime.supervisor.rows()
    accounts: list[AccountFigures] = []
    if view is not None:
        for name, seen in sorted(view.accounts.items()):
            acct = cfg.accounts.accounts.get(name)
            profile = cfg.profiles.get(acct.capital_profile) if acct is not None else None
            if profile is None:
                continue
            s = seen.state
            peak = s.peak_equity
            accounts.append(
                AccountFigures(
                    name=name,
                    day_pnl_pct=_pct(s.equity, s.day_start_equity),
                    week_pnl_pct=_pct(s.equity, s.week_start_equity),
                    drawdown_pct=(peak - s.equity) / peak * 100.0 if peak is not None and peak > 0 else None,
                    max_daily_loss_pct=profile.max_daily_loss_pct,
                    max_weekly_loss_pct=profile.max_weekly_loss_pct,
                    max_drawdown_pct=profile.max_drawdown_pct,
                )
            )
    journal = runtime.journal
    counters = runtime.counters
    ess = current.state if current is not None else None
    return Observation(
        unusable=_unusable(runtime, sources, clock),
        monotonic=now,
        wall=clock.now(),
        sources=tuple(sources),
        ess_active=ess.active if ess is not None else None,
        ess_reason=ess.reason if ess is not None else "",
        ess_halting=tuple(r.source for r in ess.sources if r.active is True) if ess is not None else (),
        ess_readings=tuple((r.source, r.detail) for r in ess.sources if r.active is True) if ess is not None else (),
        reduce_only=reduce_only_reason(runtime),
        gate_alive=any(row["actor"] == "gate" and row["alive"] for row in rows),
        journal_problem=journal.problem,
        journal_blocking=journal.blocking,
        journal_dropped=journal.dropped,
        accounts=tuple(accounts),
        restarts={row["actor"]: int(row["restarts"]) for row in rows},
        decisions=counters.snapshot()[0] if counters is not None else {},
        prices=_prices(cfg, view),
    )


def _prices(cfg: Config, view: GateView | None) -> tuple[PriceReading, ...]:
    """Each symbol the prices source covers, as the gate holds it (none without [prices])."""
    if not cfg.prices.enabled or view is None:
        return ()
    out = []
    for symbol in sorted(set(view.prices) | cfg.priced_symbols):
        found = view.prices.get(symbol)
        fresh = found is not None and view.monotonic <= found[1]
        paused = found is not None and view.monotonic < found[2]
        out.append(PriceReading(symbol, fresh, found[3] if found is not None and paused else None))
    return tuple(out)


def _unusable(runtime: Runtime, sources: list[SourceReading], clock: Clock) -> tuple[str, ...]:
    """What the gate's own check 3 refuses although Risk v3 is fresh by age: a
    signal stamped long ago or in the future (an unreadable ESS source is the
    `ess_active is None` of the observation). The blockers as the state reader
    finds them: the signal the link last sent, the ESS board."""
    if not any(s.name == "risk_v3" and s.age_s is not None and 0.0 <= s.age_s <= s.max_age_s for s in sources):
        return ()
    blockers = StateReader(runtime, clock, None).blockers()
    return tuple(_limit_said(d.reason) for d in blockers if d.code is RC.RISK_STATE_STALE)  # "Risk v3 ..." itself


_LIMIT = re.compile(r"(\d)s (ago|in the future) > (?:risk_v3\.)?([a-z_]+)_s=([\d.e+]+)")


def _limit_said(reason: str) -> str:
    """The check's reason with its limit for people: "Risk v3 signal evaluated 3600 s ago (limit
    900 s)", not "3600s ago > max_signal_age_s=900.0"."""
    return _LIMIT.sub(lambda m: f"{m[1]} s {m[2]} (limit {float(m[4]):g} s)", reason)


class Alerting:
    """The alerting actor, its webhook workers and its timer: `start()` / `stop()`."""

    def __init__(self, runtime: Runtime, clock: Clock, instance: str | None = None) -> None:
        self._runtime = runtime
        self._clock = clock
        self._instance = instance or socket.gethostname()
        self._senders: list[WebhookSender] = []
        self._ref: pykka.ActorRef[AlertsActor] | None = None
        self._pending: pykka.Future[Any] | None = None
        self._timer: Timer | None = None
        self.ticks_skipped = 0
        self.firing: tuple[str, ...] = ()  # the alert keys firing after the last tick (one reference swap)

    def _published(self, keys: tuple[str, ...]) -> None:
        self.firing = keys

    def status(self) -> dict[str, Any]:
        """For /v1/state: what fires and how each webhook fares (plain reads, no actor ask)."""
        return {
            "enabled": True,
            "firing": list(self.firing),
            "webhooks": [
                {
                    "name": s.name,
                    "format": s.config.format,
                    "queued": len(s),
                    "delivered": s.delivered,
                    "dropped": s.dropped,
                    "failing": s.failing,
                }
                for s in self._senders
            ],
        }

    @property
    def senders(self) -> list[WebhookSender]:
        return list(self._senders)

    def start(self) -> Alerting:
        cfg = self._runtime.config.alerts
        self._senders = [
            WebhookSender(hook, self._clock, self._report, self._instance).start() for hook in cfg.webhooks.values()
        ]
        self._ref = AlertsActor.start(
            cfg, self._observer(), self._runtime.journal, self._clock.monotonic(), self._senders, self._published
        )
        self._ref.proxy().ping().get(timeout=5)
        self._timer = self._clock.call_every(cfg.interval_s, self._on_timer, "alerts")
        log.info("alerting_started", webhooks=sorted(cfg.webhooks), interval_s=cfg.interval_s)
        if self._runtime.counters is None:
            log.warning(
                "alerts_without_block_counts",
                note="[metrics] enabled = false: no decision counters, so the block-rate rules see nothing",
            )
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ref is not None:
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                self._ref.stop(timeout=5)
            self._ref = None
        for sender in self._senders:  # all at once: a hanging webhook delays the stop once, not per webhook
            sender.request_stop()
        for sender in self._senders:
            sender.stop()
        self._senders = []

    def _observer(self) -> Callable[[], Observation]:
        """What the actor looks at each tick: the gate's view (or, while the gate is too
        busy to answer or restarting, the last one: no accounts is not "no loss limit
        reached"), its sources, the supervisor's rows, the journal and the counters."""
        last: list[GateView | None] = [None]

        def look() -> Observation:
            view = self._runtime.gate_view(VIEW_TIMEOUT_S)
            if view is None:
                view = last[0]
            last[0] = view
            return observe(self._runtime, self._clock, view)

        return look

    def _on_timer(self) -> None:
        self.tick()

    def tick(self) -> pykka.Future[Any] | None:
        """Send a Tick (the timer does, every interval); skipped while one is still running."""
        ref, pending = self._ref, self._pending
        if ref is None:
            return None
        if pending is not None:
            try:
                pending.get(timeout=0)
            except pykka.Timeout:
                self.ticks_skipped += 1
                return None
            except Exception:  # noqa: BLE001, S110 - the actor logs its own failures
                pass
        try:
            self._pending = ref.ask(Tick(), block=False)
        except pykka.ActorDeadError:
            log.error("alerts_actor_dead")
            return None
        return self._pending

    def settle(self, timeout: float = 10.0) -> list[str]:
        """Wait until every tick sent so far ran; the keys of the alerts firing now."""
        if self._ref is None:
            return []
        return list(self._ref.proxy().active().get(timeout=timeout))

    def wait_delivered(self, timeout: float = 10.0) -> bool:
        """Wait until every webhook delivered what it was given; False after `timeout` (per webhook)."""
        return all(sender.wait_empty(timeout) for sender in self._senders)

    def _report(self, kind: str, webhook: str, **detail: Any) -> None:
        """From a webhook's worker thread: journal and log what happened to a delivery."""
        self._runtime.journal.event(self._clock.now(), kind, "alerts", None, webhook=webhook, **detail)
        if kind in ("alert_delivery_failed", "alert_dropped"):
            log.warning(kind, webhook=webhook, **detail)
        else:
            log.info(kind, webhook=webhook, **detail)
