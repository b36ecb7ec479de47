"""Configuration: the schema (frozen dataclasses) and its loading from TOML.

The schema is imported at once (the pure core reads it); the loading, which
needs tomllib, os and the like, only when one of its names is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.config.schema import (
    ALERT_FORMATS,
    API_ACCESS,
    ESS_CONTRACTS,
    JOURNAL_POLICIES,
    WEEKDAYS,
    AccountConfig,
    AccountsConfig,
    AlertsConfig,
    ApiConfig,
    Config,
    EssConfig,
    ExchangeConfig,
    GateConfig,
    HealthConfig,
    JournalConfig,
    MetricsConfig,
    OperatorConfig,
    OverridesConfig,
    PeriodsConfig,
    PricesConfig,
    ProfileConfig,
    RiskV3Config,
    ShadowConfig,
    StateConfig,
    SupervisionConfig,
    SymbolConfig,
    WebhookConfig,
    changed_keys,
)

__all__ = [
    "ALERT_FORMATS",
    "API_ACCESS",
    "ESS_CONTRACTS",
    "JOURNAL_POLICIES",
    "WEEKDAYS",
    "AccountConfig",
    "AccountsConfig",
    "AlertsConfig",
    "ApiConfig",
    "Config",
    "ConfigError",
    "EssConfig",
    "ExchangeConfig",
    "GateConfig",
    "HealthConfig",
    "JournalConfig",
    "MetricsConfig",
    "OperatorConfig",
    "OverridesConfig",
    "PeriodsConfig",
    "PricesConfig",
    "ProfileConfig",
    "RiskV3Config",
    "ShadowConfig",
    "StateConfig",
    "SupervisionConfig",
    "SymbolConfig",
    "WebhookConfig",
    "changed_keys",
    "load_config",
    "parse_config",
]

if TYPE_CHECKING:
    from supervisor.config.loading import ConfigError, load_config, parse_config

_LOADING = frozenset({"ConfigError", "load_config", "parse_config"})


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        from supervisor.config import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'supervisor.config' has no attribute {name!r}")
