"""riskgate: a pre-trade risk supervisor. Public API (DESIGN.md section 2)."""

from supervisor.config import Config, ConfigError, load_config, parse_config
from supervisor.facade import RiskSupervisor
from supervisor.messages import (
    AccountSnapshot,
    AccountState,
    EssSourceStatus,
    EssState,
    Fill,
    OrderOutcome,
    OrderRequest,
    Override,
    Position,
    RiskGateResult,
    RiskSignal,
)
from supervisor.reasons import ReasonCode

__all__ = [
    "AccountSnapshot",
    "AccountState",
    "Config",
    "ConfigError",
    "EssSourceStatus",
    "EssState",
    "Fill",
    "OrderOutcome",
    "OrderRequest",
    "Override",
    "Position",
    "ReasonCode",
    "RiskGateResult",
    "RiskSignal",
    "RiskSupervisor",
    "load_config",
    "parse_config",
]
