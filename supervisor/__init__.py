"""riskgate: a pre-trade risk supervisor. The public API (docs/api.md).

Every public name is loaded on first use (PEP 562): `import supervisor.core.checks`
loads the pure core alone, not asyncio, threading, structlog or tomllib
(tests/supervisor/core/test_purity.py), and the facade, which imports the actors,
never makes a cycle with them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from supervisor.version import __version__

if TYPE_CHECKING:
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
    from supervisor.facade import RiskSupervisor
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

# Where each public name lives.
_MESSAGES = (
    "AccountSnapshot", "AccountState", "EssSourceStatus", "EssState", "Fill", "OrderOutcome", "OrderRequest",
    "Position", "RiskGateResult", "RiskSignal",
)  # fmt: skip
_HOMES = {
    **dict.fromkeys(("Config", "ConfigError", "load_config", "parse_config"), "supervisor.config"),
    **dict.fromkeys(_MESSAGES, "supervisor.core.messages"),
    "ReasonCode": "supervisor.core.reasons",
    "RiskgateError": "supervisor.errors",
    "RiskSupervisor": "supervisor.facade",
    **dict.fromkeys(
        ("AsyncGuardedAdapter", "AsyncGuardedExchange", "GuardedAdapter", "GuardedExchange", "OrderBlocked"),
        "supervisor.integrations.execution",
    ),
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # once: later reads are plain module attributes
    return value
