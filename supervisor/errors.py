"""riskgate's exceptions: one base, one subclass per layer.

`RiskgateError` is what a caller catches to mean "riskgate refused this":

- `supervisor.config.ConfigError`: the configuration is invalid (every problem, with its TOML path);
- `supervisor.sources.upstream.UpstreamError`: an upstream answer (or a report) cannot be used;
- `supervisor.sources.http.FetchError`: a fetch failed (a stable `kind`: timeout, connect, ...);
- `supervisor.sources.baseline_store.StoreError`: the state folder or baseline store cannot be used;
- `supervisor.runtime.supervision.ActorStartError`: an actor could not start (with its cause);
- `supervisor.ops.controls.ControlError`: an operator's action refused (its `status` is the HTTP one);
- `supervisor.journal.store.JournalUnreadableError`: the journal's file cannot be read;
- `supervisor.api.server.ApiStartError`: the HTTP API cannot listen where it was told to;
- `supervisor.integrations.execution.OrderBlocked`: the gate blocked an order; nothing was sent.

`evaluate` never raises any of them: a decision is always an answer.
"""

from __future__ import annotations

__all__ = ["RiskgateError"]


class RiskgateError(Exception):
    """Base of every error riskgate raises on purpose."""
