"""What the HTTP API needs of riskgate, as narrow protocols.

The API sits below the facade (the facade starts it and hands itself in), so
it names what it uses here instead of importing `RiskSupervisor`; and each
group of routes names only its part: the token check and events (`Basics`),
deciding orders (`Decider`), reports from the execution side (`Reporter`),
reading state, decisions and metrics (`Reader`), and steering it: halts,
overrides, reloads (`Operator`). `GateService` is all of them, what the
server is handed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.messages import AccountSnapshot, AccountState, Fill, OrderOutcome, RiskGateResult
from supervisor.core.reasons import ReasonCode
from supervisor.ops.controls import OperatorControls, OverrideRecord
from supervisor.ops.metrics import MetricsRegistry

__all__ = ["Basics", "Decider", "GateService", "Operator", "Reader", "Reporter"]


class Basics(Protocol):
    """The running config, the clock, and the journal for the API's own events."""

    @property
    def config(self) -> Config: ...

    journal: JournalQueue
    clock: Clock


class Decider(Basics, Protocol):
    def evaluate(self, order: Any, timeout: float | None = None) -> RiskGateResult: ...

    async def evaluate_async(self, order: Any, timeout: float | None = None) -> RiskGateResult: ...

    def reject(self, order: Any, why: str, code: ReasonCode = ReasonCode.INVALID_ORDER) -> RiskGateResult: ...


class Reporter(Basics, Protocol):
    def report_message(self, account: str) -> bool: ...

    def report_fill(self, fill: Fill, timeout: float = 5.0) -> AccountState | None: ...

    def report_order_outcome(self, outcome: OrderOutcome) -> bool: ...

    def report_account_snapshot(
        self, snapshot: AccountSnapshot | Mapping[str, Any], timeout: float = 5.0
    ) -> AccountState | None: ...

    def tracker_alive(self) -> bool: ...


class Reader(Basics, Protocol):
    metrics: MetricsRegistry

    def state(self, timeout: float = 1.0) -> dict[str, Any]: ...

    def decision_rates(self) -> dict[str, Any]: ...

    def decision_series(self, span: str) -> dict[str, Any]: ...

    def explain(self, order_id: str) -> list[dict[str, Any]]: ...

    def readiness(self) -> list[str]: ...

    def decisions(
        self,
        *,
        account: str | None = None,
        code: str | None = None,
        decision: str | tuple[str, ...] | None = None,
        since_us: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...


class Operator(Basics, Protocol):
    controls: OperatorControls

    def reload(self, path: str | Path | None = None, by: str = "api") -> dict[str, Any]: ...

    def halt(self, reason: str, by: str, mode: str = "all") -> dict[str, Any]: ...

    def resume(self, by: str, reason: str = "resumed") -> dict[str, Any]: ...

    def propose_override(self, account: str, reason: str, ttl_s: float, by: str) -> OverrideRecord: ...

    def approve_override(self, override_id: str, by: str) -> OverrideRecord: ...

    def revoke_override(self, override_id: str, by: str) -> OverrideRecord: ...

    def overrides(self) -> list[OverrideRecord]: ...

    def lockouts(self) -> dict[str, list[dict[str, Any]]]: ...

    def clear_lockout(self, account: str, reason: str, by: str) -> dict[str, Any]: ...


class ShadowKeeper(Basics, Protocol):
    """The shadow config (docs/replay.md): its summary, and its promotion to the live config."""

    def shadow(self) -> dict[str, Any]: ...

    def promote_shadow(self, by: str, reason: str) -> dict[str, Any]: ...


class GateService(Decider, Reporter, Reader, Operator, ShadowKeeper, Protocol):
    """Everything above: what the API server is handed (the facade)."""
