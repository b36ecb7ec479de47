"""AlertsActor: looks at the running gate every `alerts.interval_s` and tells people.

On each `Tick` it gathers an `Observation` from outside the decision path
(source ages from the gate link and the ESS board, the supervisor's rows, the
journal's figures, the `GateCounters` the gate already keeps, and one
`GateView` ask with a short timeout for the accounts' PnL), runs the
`AlertBook`, and for each transition journals it (`alert_firing`,
`alert_resolved`), logs it and queues it for every webhook. The gate does
nothing new for alerting.

`Alerting` is the start/stop pair the facade holds: it starts the actor and
the webhook workers, and sends a `Tick` on the injected clock (skipping a
tick while the previous one is still running, so ticks never pile up).
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from actors.base import SupervisedActor
from supervisor.clock import Clock, Timer
from supervisor.core.reasons import ReasonCode as RC
from supervisor.gate import GateView
from supervisor.logs import get_logger
from supervisor.ops.alerts.book import AlertBook
from supervisor.ops.alerts.rules import AccountFigures, Observation, SourceReading, Transition
from supervisor.ops.alerts.webhooks import WebhookSender
from supervisor.ops.state import StateReader
from supervisor.runtime.wiring import Runtime

__all__ = ["Alerting", "AlertsActor", "Tick"]

log = get_logger("riskgate.alerts")

VIEW_TIMEOUT_S = 0.5  # the accounts' figures: one gate ask per tick, never a long wait


@dataclass(frozen=True, slots=True)
class Tick:
    """Time to look (sent every `alerts.interval_s`)."""


def _pct(equity: float, start: float) -> float | None:
    return (equity - start) / start * 100.0 if start > 0 else None


def observe(runtime: Runtime, clock: Clock, view: GateView | None) -> Observation:
    """What the gate and its sources show now (no gate ask here: `view` is passed in)."""
    cfg = runtime.config
    now = clock.monotonic()
    current = runtime.board.current
    sources = [
        SourceReading("risk_v3", runtime.link.age("risk_v3", now=now), cfg.risk_v3.max_age_s),
        SourceReading("ess", None if current is None else now - current[1], cfg.ess.max_age_s),
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
    ess = current[0] if current is not None else None
    return Observation(
        unusable=_unusable(runtime, sources, clock),
        monotonic=now,
        wall=clock.now(),
        sources=tuple(sources),
        ess_active=ess.active if ess is not None else None,
        ess_reason=ess.reason if ess is not None else "",
        ess_halting=tuple(r.source for r in ess.sources if r.active is True) if ess is not None else (),
        gate_alive=any(row["actor"] == "gate" and row["alive"] for row in rows),
        journal_problem=journal.problem,
        journal_blocking=journal.blocking,
        journal_dropped=journal.dropped,
        accounts=tuple(accounts),
        restarts={row["actor"]: int(row["restarts"]) for row in rows},
        decisions=counters.snapshot()[0] if counters is not None else {},
    )


def _unusable(runtime: Runtime, sources: list[SourceReading], clock: Clock) -> tuple[str, ...]:
    """What the gate's own check 3 refuses although Risk v3 is fresh by age: a
    signal stamped long ago or in the future (an unreadable ESS source is the
    `ess_active is None` of the observation). The blockers as the state reader
    finds them: the signal the link last sent, the ESS board."""
    if not any(s.name == "risk_v3" and s.age_s is not None and 0.0 <= s.age_s <= s.max_age_s for s in sources):
        return ()
    blockers = StateReader(runtime, clock, None).blockers()
    return tuple(f"risk_v3: {d.reason}" for d in blockers if d.code is RC.RISK_STATE_STALE)


def _account_of(detail: Mapping[str, object]) -> str | None:
    account = detail.get("account")
    return account if isinstance(account, str) else None


class AlertsActor(SupervisedActor):
    def __init__(
        self,
        runtime: Runtime,
        clock: Clock,
        started: float,
        senders: list[WebhookSender],
        publish: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        super().__init__()
        self._publish = publish  # where the keys firing after each tick go (read by /v1/state)
        self._runtime = runtime
        self._clock = clock
        self._book = AlertBook(runtime.config.alerts, started)
        self._senders = senders
        self._failing: str | None = None  # the last tick's error, logged once until a tick succeeds
        self._last_view: GateView | None = None

    def on_receive(self, message: object) -> object:
        if isinstance(message, Tick):
            self._tick()
        return None

    def active(self) -> list[str]:
        """The keys of the alerts firing now."""
        return sorted(self._book.active)

    def _tick(self) -> None:
        transitions: list[Transition] = []
        try:
            view = self._runtime.gate_view(VIEW_TIMEOUT_S)
            if view is None:
                # A gate too busy to answer (or restarting) shows no accounts: that is not
                # "no loss limit reached". The last figures stand until it answers again.
                view = self._last_view
            self._last_view = view
            transitions = self._book.update(observe(self._runtime, self._clock, view))
        except Exception as exc:  # noqa: BLE001 - a bad look must not stop the next one (logged)
            self._failed(exc)
        else:
            if self._failing is not None:
                log.info("alerts_tick_recovered")
            self._failing = None
        for t in transitions:  # each on its own: the book has moved on, none may be lost to another
            try:
                self._announce(t)
            except Exception as exc:  # noqa: BLE001 - logged; the other transitions still go out
                self._failed(exc)
        if self._publish is not None:
            self._publish(tuple(sorted(self._book.active)))
        for sender in self._senders:
            sender.pump()  # retries whose backoff has passed go now

    def _failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self._failing:  # once until it changes or a tick succeeds
            log.error("alerts_tick_failed", error=error, exc_info=exc)
        self._failing = error

    def _announce(self, t: Transition) -> None:
        a = t.alert
        kind = f"alert_{t.state}"
        fields: dict[str, Any] = {
            "key": a.key,
            "rule": a.rule,
            "severity": a.severity,
            "summary": a.summary,
            **{f"detail_{k}": v for k, v in a.detail.items() if not (isinstance(v, float) and not math.isfinite(v))},
        }
        if t.state == "resolved":
            fields["duration_s"] = round(t.duration_s, 3)
        self._runtime.journal.event(t.at, kind, "alerts", _account_of(a.detail), **fields)
        (log.warning if t.state == "firing" else log.info)(kind, **fields)
        for sender in self._senders:
            sender.offer(t)


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
            self._runtime, self._clock, self._clock.monotonic(), self._senders, self._published
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
