"""AlertsActor: looks at the running gate every `alerts.interval_s` and tells people.

On each `Tick` it takes an `Observation` (built outside the decision path by
whoever started it: supervisor.ops.alerting), runs the `AlertBook`, and for each
transition journals it (`alert_firing`, `alert_resolved`), logs it and queues
it for every webhook. The gate does nothing new for alerting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from actors.base import SupervisedActor
from actors.messages import Tick
from supervisor.alerts.book import AlertBook
from supervisor.alerts.rules import Observation, Transition
from supervisor.alerts.webhooks import WebhookSender
from supervisor.channels.journal_queue import JournalQueue
from supervisor.config import AlertsConfig
from supervisor.logs import get_logger

__all__ = ["AlertsActor"]

log = get_logger("riskgate.alerts")


def _account_of(detail: Mapping[str, object]) -> str | None:
    account = detail.get("account")
    return account if isinstance(account, str) else None


class AlertsActor(SupervisedActor):
    def __init__(
        self,
        config: AlertsConfig,
        observe: Callable[[], Observation],
        journal: JournalQueue,
        started: float,
        senders: list[WebhookSender],
        publish: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        super().__init__()
        self._observe = observe
        self._journal = journal
        self._publish = publish  # where the keys firing after each tick go (read by /v1/state)
        self._book = AlertBook(config, started)
        self._senders = senders
        self._failing: str | None = None  # the last tick's error, logged once until a tick succeeds

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
            transitions = self._book.update(self._observe())
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
        self._journal.event(t.at, kind, "alerts", _account_of(a.detail), **fields)
        (log.warning if t.state == "firing" else log.info)(kind, **fields)
        for sender in self._senders:
            sender.offer(t)
