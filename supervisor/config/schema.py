"""The configuration's shape: frozen dataclasses, one per TOML table, with
their defaults. Parsing and validation live in `supervisor.config.loading`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

__all__ = [
    "ALERT_FORMATS",
    "API_ACCESS",
    "COLLAR_POLICIES",
    "ESS_CONTRACTS",
    "JOURNAL_DURABILITY",
    "JOURNAL_POLICIES",
    "JOURNAL_WRITERS",
    "STORE_BACKENDS",
    "WARNING_SCALING",
    "WEEKDAYS",
    "AccountConfig",
    "AccountsConfig",
    "AlertsConfig",
    "ApiConfig",
    "Config",
    "EssConfig",
    "ExchangeConfig",
    "GateConfig",
    "HealthConfig",
    "InstanceConfig",
    "JournalConfig",
    "MetricsConfig",
    "OperatorConfig",
    "OverridesConfig",
    "PeriodsConfig",
    "PricesConfig",
    "ProfileConfig",
    "RiskV3Config",
    "StateConfig",
    "StoreConfig",
    "SupervisionConfig",
    "SymbolConfig",
    "WebhookConfig",
    "changed_keys",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class GateConfig:
    evaluate_timeout_s: float = 0.25
    max_orders_per_s: int = 20
    warning_scale_factor: float = 0.5
    reduce_only_when_critical: bool = False
    reservation_ttl_s: float = 30.0
    collar_pct: float = 10.0  # a price further than this from the reference blocks (PRICE_OUT_OF_COLLAR)
    collar_missing_reference: str = "allow"  # no reference price at all: "allow" or "block"
    duplicate_window_s: float = 60.0  # an order id decided within this blocks; so do repeats past max_repeats
    max_messages_per_s: int = 50  # orders, cancels and edits per account per second; then new orders block
    max_repeats: int = 10  # the same account/symbol/side/quantity/price this often within the window, then blocks
    warning_scaling: str = "fixed"  # "fixed": warning_scale_factor; "risk_score": by the signal's score
    reduced_tier_scale_factor: float = 0.75  # ESS tier REDUCED with warning_scaling = "risk_score"
    gc_young_threshold: int = 20_000  # Python's young-generation threshold for the process; 0: left as it is


@dataclass(frozen=True, slots=True)
class RiskV3Config:
    url: str = "http://127.0.0.1:8001"
    poll_interval_s: float = 2.0
    timeout_s: float = 1.0
    max_age_s: float = 10.0
    max_signal_age_s: float = 900.0
    max_clock_skew_s: float = 5.0  # a signal stamped further ahead than this is unusable


@dataclass(frozen=True, slots=True)
class PricesConfig:
    """The gate's own price reference (docs/prices.md): `url` (GET {url}/prices) or `exchange`
    (public tickers through ccxt); neither: no prices source (the collar falls back to marks)."""

    url: str | None = None
    exchange: str | None = None  # a ccxt exchange id ("binance"): pip install riskgate[exchanges]
    symbols: frozenset[str] = frozenset()  # must be priced: without a fresh price, PRICE_REFERENCE_STALE
    poll_interval_s: float = 1.0
    timeout_s: float = 1.0
    max_age_s: float = 5.0  # a price older than this (by its stamp or its fetch) is stale
    max_clock_skew_s: float = 5.0  # prices stamped further ahead than this are unusable
    max_plausible_usd: float = 1e12  # a price above this is unusable (so is one <= 0)
    spike_pct: float | None = 10.0  # a move beyond this within spike_window_s pauses the symbol; None: never
    spike_window_s: float = 60.0  # also the collar over a period: within collar_pct of the mark this long ago
    spike_pause_s: float = 120.0  # how long opening orders on the symbol block after a spike

    @property
    def enabled(self) -> bool:
        return self.url is not None or self.exchange is not None


ESS_CONTRACTS = {"emergency_status": "/api/emergency/status", "risk_safety": "/api/risk/ess/status"}


@dataclass(frozen=True, slots=True)
class EssConfig:
    url: str | None = None
    kill_switch_file: str | None = None
    poll_interval_s: float = 0.5
    timeout_s: float = 0.5
    max_age_s: float = 3.0
    contract: str = "emergency_status"  # which ESS service answers at url (see ESS_CONTRACTS)
    path: str = ESS_CONTRACTS["emergency_status"]
    cancel_open_orders_on_halt: bool = False  # guarded clients cancel their resting orders when a halt begins


@dataclass(frozen=True, slots=True)
class AccountConfig:
    name: str
    exchange: str
    capital_profile: str
    max_notional_usd: float | None = None
    # With accounts.snapshot_url set, the polled snapshots are the account's truth and one
    # pushed over HTTP is refused, unless this says the account takes pushes too.
    takes_pushes: bool = False


COLLAR_POLICIES = ("allow", "block")
WARNING_SCALING = ("fixed", "risk_score")


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    snapshot_url: str | None = None
    poll_interval_s: float = 5.0
    timeout_s: float = 1.0
    max_age_s: float = 60.0
    max_plausible_usd: float = 1e12  # equity, marks and position notionals above this are unusable
    max_clock_skew_s: float = 5.0  # a snapshot stamped further in the future is unusable
    accounts: Mapping[str, AccountConfig] = field(default_factory=dict)

    def takes_pushes(self, name: str) -> bool:
        """Whether a snapshot of `name` pushed over HTTP may be applied: always when
        nothing is polled; when snapshots are polled, only for an account configured
        to take pushes. (The program embedding riskgate pushes what it knows.)"""
        if self.snapshot_url is None:
            return True
        account = self.accounts.get(name)
        return account is not None and account.takes_pushes


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    name: str
    max_notional_usd: float | None = None


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    name: str
    max_daily_loss_pct: float
    max_weekly_loss_pct: float
    max_single_trade_risk_pct: float
    max_open_positions: int
    allowed_leverage: float
    max_order_notional_usd: float | None = None  # one order above this blocks (MAX_ORDER_NOTIONAL)
    max_drawdown_pct: float | None = None  # equity this % below the week's peak: opening orders block
    cooldown_minutes: float | None = None  # after a daily/weekly limit trips, new positions stay blocked this long
    whitelist: frozenset[str] = frozenset()
    blacklist: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SymbolConfig:
    name: str
    lot_step: float
    min_qty: float
    min_notional: float = 0.0
    max_qty: float | None = None  # one order above this blocks (MAX_ORDER_QUANTITY)
    collar_pct: float | None = None  # None: gate.collar_pct
    collar_missing_reference: str | None = None  # None: gate.collar_missing_reference


@dataclass(frozen=True, slots=True)
class PeriodsConfig:
    daily_reset_hour_utc: int = 0
    weekly_reset_day: str = "monday"

    @property
    def weekly_reset_weekday(self) -> int:
        return WEEKDAYS.index(self.weekly_reset_day)


@dataclass(frozen=True, slots=True)
class StateConfig:
    dir: Path = Path("state")


STORE_BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where state shared by several instances lives (docs/scale-out.md). "sqlite": nothing is
    shared (one instance, its state folder); "postgresql": the journal, the operator halt, the
    instances and the caps' leased budgets are shared through the database at `dsn`."""

    backend: str = "sqlite"
    dsn: str | None = field(default=None, repr=False)  # may hold a password: never shown
    poll_interval_s: float = 0.5  # each round: heartbeat, leases renewed, shared halt read (LISTEN wakes it sooner)
    timeout_s: float = 1.0  # a round's deadline (connect, statements): then its connection is cut
    max_age_s: float = 3.0  # shared state not confirmed within this: opening orders block (SHARED_STATE_STALE)
    lease_ttl_s: float = 30.0  # a lease not renewed within this expires (here first, then in the database)
    lease_slice_pct: float = 10.0  # each instance asks for at least this share of each cap beyond what it holds

    @property
    def shared(self) -> bool:
        return self.backend == "postgresql"


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    name: str = ""  # unique per desk; "" until loaded: the host name


@dataclass(frozen=True, slots=True)
class HealthConfig:
    interval_s: float = 30.0


JOURNAL_POLICIES = ("block", "continue")
JOURNAL_WRITERS = ("process", "thread")
JOURNAL_DURABILITY = ("batch", "commit")


@dataclass(frozen=True, slots=True)
class JournalConfig:
    enabled: bool = True  # false: decisions are still logged (blocks, scale-downs), not stored
    flush_interval_s: float = 0.1  # group commit at least this often
    on_failure: str = "block"  # the journal cannot write, or its queue is full: "block" or "continue"
    max_queue: int = 100_000  # records waiting to be written
    retention_days: float = 30.0
    writer: str = "process"  # "process": SQLite in a child process (off the GIL); "thread": in the journal's thread
    # "batch": records are committed every flush_interval_s (a killed process loses the last interval);
    # "commit": an approved order's answer waits until its record is committed (group commit).
    durability: str = "batch"


@dataclass(frozen=True, slots=True)
class SupervisionConfig:
    check_interval_s: float = 1.0
    heartbeat_timeout_s: float = 2.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


API_ACCESS = ("open", "token")


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    """An operator (control: reload, halt, overrides) or a client (an execution
    service: orders, fills, outcomes, snapshots) of the API: the SHA-256 of its
    bearer token (hex), from `token_sha256` or hashed from `token_env` at load."""

    name: str
    token_sha256: str = field(repr=False)
    # A client's accounts: it may evaluate and report for these only (None: every account).
    accounts: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = True  # `riskgate run` serves the HTTP API (library users opt in: api=True)
    host: str = "127.0.0.1"
    port: int = 8010
    read_access: str = "open"  # "open" or "token": whether GET endpoints need an operator's or client's token
    execution_access: str = "token"  # "token": orders, fills, outcomes and snapshots need a client's token
    max_connections: int = 512  # beyond this, orders and reports get 503 at once (file descriptors stay bounded)
    operator_reserve: int = 16  # connections beyond max_connections kept for probes and operators' controls
    request_timeout_s: float = 5.0  # a whole request must arrive within this, or its connection is closed
    # The order socket (docs/http-api.md#the-order-socket): a Unix socket path for execution services on
    # this machine, one JSON order per line over a persistent connection ("": none).
    order_socket: str = ""
    order_socket_idle_s: float = 300.0  # a connection that sends nothing for this long is closed
    operators: Mapping[str, OperatorConfig] = field(default_factory=dict)
    clients: Mapping[str, OperatorConfig] = field(default_factory=dict)

    @property
    def scoped(self) -> bool:
        """Whether any client is limited to some accounts."""
        return any(c.accounts is not None for c in self.clients.values())


@dataclass(frozen=True, slots=True)
class OverridesConfig:
    approval_timeout_s: float = 300.0  # a proposal not approved by a second operator within this expires
    max_ttl_s: float = 900.0  # the longest an approved override may last
    # `riskgate lockouts clear` takes a second operator's word (within approval_timeout_s) too
    lockout_clear_two_person: bool = False


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True  # the gate counts decisions and latency; /metrics exposes them


ALERT_FORMATS = ("json", "slack")


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where alerts go: `url` from the file or, for a secret (a Slack webhook URL
    is one), from the environment variable `url_env` at load (never logged)."""

    name: str
    url: str = field(repr=False)
    format: str = "json"  # "json": the alert object; "slack": {"text": ...}
    timeout_s: float = 3.0  # the whole request (connect, send, the answer's status line and headers)
    max_backoff_s: float = 60.0  # retries wait 1, 2, 4, ... s, capped at this


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    enabled: bool = False
    interval_s: float = 1.0  # rules are evaluated this often
    startup_grace_s: float = 10.0  # a source with no state yet is not stale before this
    block_rate_per_account_per_min: int = 30  # more blocks than this in a minute for one account alerts
    block_rate_per_reason_per_min: int = 60  # and for one reason code, over all accounts
    source_stale_s: float = 30.0  # a source stale this long alerts (0: as soon as it is stale)
    actor_restarts: int = 3  # more restarts than this within 10 minutes alerts
    webhooks: Mapping[str, WebhookConfig] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    """`[shadow]`: decide every order under a candidate config too, off the decision path,
    and journal each disagreement (docs/replay.md). `config` None: no shadow."""

    config: Path | None = None  # the candidate's TOML file (relative: to this config's folder)
    poll_interval_s: float = 0.5  # how often the shadow reads what the journal wrote


@dataclass(frozen=True, slots=True)
class Config:
    gate: GateConfig = GateConfig()
    risk_v3: RiskV3Config = RiskV3Config()
    prices: PricesConfig = PricesConfig()
    ess: EssConfig = EssConfig(kill_switch_file="state/KILL_SWITCH")
    accounts: AccountsConfig = AccountsConfig()
    exchanges: Mapping[str, ExchangeConfig] = field(default_factory=dict)
    profiles: Mapping[str, ProfileConfig] = field(default_factory=dict)
    global_blacklist: frozenset[str] = frozenset()
    symbols: Mapping[str, SymbolConfig] = field(default_factory=dict)
    periods: PeriodsConfig = PeriodsConfig()
    state: StateConfig = StateConfig()
    store: StoreConfig = StoreConfig()
    instance: InstanceConfig = InstanceConfig()
    health: HealthConfig = HealthConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    journal: JournalConfig = JournalConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    overrides: OverridesConfig = OverridesConfig()
    alerts: AlertsConfig = AlertsConfig()
    shadow: ShadowConfig = ShadowConfig()
    # Where the config came from, and the SHA-256 of its bytes (journaled at start).
    origin: str = "<in memory>"
    digest: str = ""

    @property
    def priced_symbols(self) -> frozenset[str]:
        """The symbols the prices source covers: prices.symbols, else every configured symbol."""
        return self.prices.symbols or frozenset(self.symbols)


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ between two configs (where they came from aside)."""
    return [k[1:] for k in _changed(old, new, "") if k not in (".origin", ".digest")]


def _changed(old: object, new: object, prefix: str) -> list[str]:
    if old == new:
        return []
    if is_dataclass(old) and not isinstance(old, type) and type(old) is type(new):
        names = [f.name for f in fields(old)]
        return [k for n in names for k in _changed(getattr(old, n), getattr(new, n), f"{prefix}.{n}")]
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return [k for key in sorted({*old, *new}) for k in _changed(old.get(key), new.get(key), f"{prefix}.{key}")]
    return [prefix]
