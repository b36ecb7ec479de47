"""Alerts to people: rules over what the gate shows, sent to webhooks (docs/operations.md#alerts)."""

from supervisor.ops.alerts.actor import Alerting, AlertsActor, Tick
from supervisor.ops.alerts.book import AlertBook
from supervisor.ops.alerts.rules import AccountFigures, Alert, Observation, SourceReading, Transition, Windows
from supervisor.ops.alerts.webhooks import WebhookSender, json_body, slack_body

__all__ = [
    "AccountFigures",
    "Alert",
    "AlertBook",
    "Alerting",
    "AlertsActor",
    "Observation",
    "SourceReading",
    "Tick",
    "Transition",
    "WebhookSender",
    "Windows",
    "json_body",
    "slack_body",
]
