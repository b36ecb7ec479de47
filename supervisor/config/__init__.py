"""Configuration: the schema (frozen dataclasses) and its loading from TOML."""

from supervisor.config.loading import ConfigError, load_config, parse_config
from supervisor.config.schema import (
    ESS_CONTRACTS,
    WEEKDAYS,
    AccountConfig,
    AccountsConfig,
    Config,
    EssConfig,
    ExchangeConfig,
    GateConfig,
    HealthConfig,
    PeriodsConfig,
    ProfileConfig,
    RiskV3Config,
    StateConfig,
    SupervisionConfig,
    SymbolConfig,
)

__all__ = [
    "ESS_CONTRACTS",
    "WEEKDAYS",
    "AccountConfig",
    "AccountsConfig",
    "Config",
    "ConfigError",
    "EssConfig",
    "ExchangeConfig",
    "GateConfig",
    "HealthConfig",
    "PeriodsConfig",
    "ProfileConfig",
    "RiskV3Config",
    "StateConfig",
    "SupervisionConfig",
    "SymbolConfig",
    "load_config",
    "parse_config",
]
