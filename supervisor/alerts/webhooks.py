"""Webhook delivery: one outbox and one worker thread per webhook.

An alert must reach people, but never at the gate's expense, and a webhook
that hangs or fails must not hold up another. So each webhook has its own
FIFO outbox and its own thread doing the HTTP POST (httpx, `timeout_s` for
the whole request, redirects never followed, the answer's body never read).
The head of the outbox is retried until it is delivered (any 2xx); meanwhile
nothing behind it is sent, so a `resolved` never arrives before its `firing`.
A message the webhook refuses for good (3xx, or 4xx other than 408/425/429,
`PERMANENT_ATTEMPTS` times) is dropped and reported, so a revoked URL cannot
hold back every later alert. Retries wait 1, 2, 4, ... s up
to `max_backoff_s`, on the injected clock: the worker never sleeps; the
alerting actor's tick calls `pump()`, which wakes it to send what is due.

The outbox is bounded: when it is full a new message is dropped and
reported. What happens (delivered, failing, recovered, dropped) goes to
`report(kind, webhook, **detail)`: the actor journals and logs it. A failing
webhook is reported when it starts failing, every `STILL_FAILING_EVERY_S`
while it goes on (with how many messages wait), and when it recovers; not on
every retry.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from supervisor.alerts.rules import Alert, Transition
from supervisor.clock import Clock
from supervisor.config import WebhookConfig

__all__ = ["MAX_OUTBOX", "Delivery", "WebhookSender", "backoff_s", "json_body", "render", "slack_body"]

MAX_OUTBOX = 1000  # messages waiting per webhook
INITIAL_BACKOFF_S = 1.0
PERMANENT_ATTEMPTS = 3  # a message refused with a 3xx or 4xx (not 408/425/429) this often is dropped
STILL_FAILING_EVERY_S = 300.0  # a webhook failing on is reported again this often

Report = Callable[..., None]


def backoff_s(failures: int, max_backoff_s: float) -> float:
    """The wait after the `failures`-th failed attempt in a row: 1, 2, 4, ... s, capped."""
    return float(min(max_backoff_s, INITIAL_BACKOFF_S * 2 ** min(max(failures, 1) - 1, 30)))


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def json_body(t: Transition, instance: str) -> dict[str, Any]:
    """The generic JSON alert (docs/operations.md#alerts)."""
    a = t.alert
    return {
        "service": "riskgate",
        "instance": instance,
        "key": a.key,
        "rule": a.rule,
        "state": t.state,
        "severity": a.severity,
        "summary": a.summary if t.state == "firing" else _recovered(a),
        "detail": {k: _plain(v) for k, v in a.detail.items()},
        "started_at": _iso(t.started_at),
        "at": _iso(t.at),
        "resolved_at": _iso(t.resolved_at),
    }


def _recovered(a: Alert) -> str:
    """What a resolved message says: the cause is gone (never the failure's figures again)."""
    return a.recovered or f"{a.rule} cleared"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(t: Transition, instance: str) -> dict[str, Any]:
    """Slack's incoming-webhook form: `{"text": ...}` only."""
    a = t.alert
    if t.state == "firing":
        text = (
            f":rotating_light: FIRING [{a.severity}] riskgate@{instance}: {a.summary} "
            f"({a.key}, since {t.started_at.astimezone(UTC):%H:%M:%S} UTC)"
        )
    else:
        text = (
            f":white_check_mark: RESOLVED riskgate@{instance}: {_recovered(a)} ({a.key}, lasted {t.duration_s:.1f} s)"
        )
    return {"text": _slack_escape(text)}


_FORMATS: Mapping[str, Callable[[Transition, str], dict[str, Any]]] = {"json": json_body, "slack": slack_body}


def render(t: Transition, fmt: str, instance: str) -> bytes:
    return json.dumps(_FORMATS[fmt](t, instance), allow_nan=False, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one webhook: the body is rendered once, when queued."""

    key: str
    state: str
    body: bytes


class WebhookSender:
    def __init__(
        self,
        config: WebhookConfig,
        clock: Clock,
        report: Report,
        instance: str,
        max_outbox: int = MAX_OUTBOX,
    ) -> None:
        self.config = config
        self._clock = clock
        self._report = report
        self._instance = instance
        self._max = max_outbox
        self._outbox: deque[Delivery] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # an attempt finished
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._next_attempt = 0.0  # monotonic: the head is not retried before this
        self._failures = 0  # consecutive failed attempts of the head
        self._dropping = False
        self._failing_since: float | None = None  # monotonic: the current failing streak began
        self._last_failure_report = 0.0
        self._straggler: threading.Thread | None = None  # a request abandoned past timeout_s
        self.dropped = 0
        self.delivered = 0
        self.attempts = 0  # POSTs finished, delivered or not
        self._thread = threading.Thread(target=self._run, name=f"webhook-{config.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def failing(self) -> bool:
        """Whether its last attempt failed (until one is delivered again)."""
        return self._failing_since is not None

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Tell the worker to stop after its current POST (if any)."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the worker, waiting `timeout` at most: a POST to a webhook that hangs is
        left to its own `timeout_s` (the thread is a daemon and holds nothing else)."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __len__(self) -> int:
        return len(self._outbox)

    # -- producer (the alerting actor) -----------------------------------------------------
    def offer(self, t: Transition) -> bool:
        """Queue a transition for this webhook; False (and reported once per streak) when full."""
        delivery = Delivery(t.alert.key, t.state, render(t, self.config.format, self._instance))
        with self._lock:
            accepted = len(self._outbox) < self._max
            first_drop = not accepted and not self._dropping
            self._dropping = not accepted
            if accepted:
                self._outbox.append(delivery)
            else:
                self.dropped += 1
        if first_drop:  # once per overflow streak
            self._report("alert_dropped", self.name, key=t.alert.key, state=t.state, outbox=self._max)
        if accepted:
            self._wake.set()
        return accepted

    def wait_empty(self, timeout: float) -> bool:
        """Wait until everything queued so far was delivered (and reported); False after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._outbox, timeout)

    def wait_attempts(self, n: int, timeout: float) -> bool:
        """Wait until `n` POSTs have finished (and the next retry is scheduled); False after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: self.attempts >= n, timeout)

    def pump(self) -> None:
        """Wake the worker: what is due (a retry whose backoff passed) goes now."""
        self._wake.set()

    # -- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                head = self._outbox[0] if self._outbox else None
            if head is None or self._clock.monotonic() < self._next_attempt:
                return
            error, permanent = self._post(head)
            if error is None:
                attempts, self._failures, self._next_attempt = self._failures + 1, 0, 0.0
                if self._failing_since is not None:
                    self._report(
                        "alert_delivery_recovered", self.name, key=head.key, state=head.state, attempts=attempts
                    )
                    self._failing_since = None
                self._report("alert_delivered", self.name, key=head.key, state=head.state, attempts=attempts)
                self._pop(delivered=True)
                continue
            self._failures += 1
            now = self._clock.monotonic()
            if permanent and self._failures >= PERMANENT_ATTEMPTS:
                # The webhook refuses this message for good (a revoked URL answers 404 forever):
                # it must not hold back every later alert. Dropped, and said so.
                self._report(
                    "alert_dropped", self.name, key=head.key, state=head.state, error=error, attempts=self._failures
                )
                self._failures, self._next_attempt = 0, 0.0
                self._pop(delivered=False)
                continue
            delay = backoff_s(self._failures, self.config.max_backoff_s)
            self._next_attempt = now + delay
            if self._failing_since is None or now - self._last_failure_report >= STILL_FAILING_EVERY_S:
                # Once when it starts failing, then every few minutes while it goes on.
                self._report(
                    "alert_delivery_failed",
                    self.name,
                    key=head.key,
                    state=head.state,
                    error=error,
                    retry_in_s=delay,
                    queued=len(self._outbox),
                    failing_for_s=0.0 if self._failing_since is None else round(now - self._failing_since, 1),
                )
                self._last_failure_report = now
                if self._failing_since is None:
                    self._failing_since = now
            with self._lock:
                self.attempts += 1
                self._changed.notify_all()
            return

    def _pop(self, delivered: bool) -> None:
        with self._lock:  # reported first: whoever waits for an empty outbox sees the reports
            self._outbox.popleft()
            if delivered:
                self.delivered += 1
            else:
                self.dropped += 1
            self.attempts += 1
            self._changed.notify_all()

    def _post(self, delivery: Delivery) -> tuple[str | None, bool]:
        """(None, False) when delivered (2xx), else (why not, whether retrying cannot help).

        The whole request gets `timeout_s` (a receiver dribbling its headers a byte at a time
        would pass any per-read timeout): it runs on a helper thread the worker waits for. A
        request still hanging past that is abandoned; while it hangs, no second one starts
        (at most one straggler per webhook). The answer's body is never read."""
        if self._straggler is not None and self._straggler.is_alive():
            return "the previous request is still hanging (no answer within timeout_s)", False
        outcome: list[tuple[str | None, bool]] = []
        attempt = threading.Thread(
            target=lambda: outcome.append(self._request(delivery)), name=f"webhook-{self.name}-post", daemon=True
        )
        attempt.start()
        attempt.join(self.config.timeout_s + 0.25)
        if attempt.is_alive():
            self._straggler = attempt
            return f"no complete answer within timeout_s={self.config.timeout_s:g} s", False
        return outcome[0] if outcome else ("the request failed without an answer", False)

    def _request(self, delivery: Delivery) -> tuple[str | None, bool]:
        try:
            with (
                httpx.Client(timeout=self.config.timeout_s, follow_redirects=False, trust_env=False) as client,
                client.stream(
                    "POST", self.config.url, content=delivery.body, headers={"Content-Type": "application/json"}
                ) as response,
            ):
                status = response.status_code  # headers only: a huge or endless body is never read
        except Exception as exc:  # noqa: BLE001 - a worker must survive anything a request raises
            # The URL may be a secret (Slack's are): never in a log or the journal.
            return f"{type(exc).__name__}: {exc}".replace(self.config.url, "<url>")[:300], False
        if 200 <= status < 300:
            return None, False
        transient = status >= 500 or status in (408, 425, 429)
        return f"HTTP {status}", not transient
