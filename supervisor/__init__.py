"""riskgate: a pre-trade risk supervisor. The public API (docs/api.md)."""

from __future__ import annotations

__version__ = "0.2.0"

from supervisor.config import Config, ConfigError, load_config, parse_config
from supervisor.core.messages import (
    AccountSnapshot,
    AccountState,
    EssSourceStatus,
    EssState,
    Fill,
    OrderOutcome,
    OrderRequest,
    Position,
    RiskGateResult,
    RiskSignal,
)
from supervisor.core.reasons import ReasonCode
from supervisor.errors import RiskgateError
from supervisor.integrations.execution import (
    AsyncGuardedAdapter,
    AsyncGuardedExchange,
    GuardedAdapter,
    GuardedExchange,
    OrderBlocked,
)

__all__ = [
    "AccountSnapshot",
    "AccountState",
    "AsyncGuardedAdapter",
    "AsyncGuardedExchange",
    "Config",
    "ConfigError",
    "EssSourceStatus",
    "EssState",
    "Fill",
    "GuardedAdapter",
    "GuardedExchange",
    "OrderBlocked",
    "OrderOutcome",
    "OrderRequest",
    "Position",
    "ReasonCode",
    "RiskGateResult",
    "RiskSignal",
    "RiskSupervisor",
    "RiskgateError",
    "__version__",
    "load_config",
    "parse_config",
]


def __getattr__(name: str) -> object:
    # The facade imports the actors, which import supervisor's modules: loading
    # it on first use keeps `import actors.gate` (or any actor) free of cycles.
    if name == "RiskSupervisor":
        from supervisor.facade import RiskSupervisor

        return RiskSupervisor
    raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
