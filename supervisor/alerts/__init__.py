"""Alerts to people: the rules (pure), the book that turns observations into
firing/resolved transitions, and the webhook senders. The actor that runs them
is actors.alerts; supervisor.ops.alerting starts it."""
