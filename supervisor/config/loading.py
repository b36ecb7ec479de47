"""Configuration loading: TOML parsed once into the frozen dataclasses of
`supervisor.config.schema`.

`load_config(path)` reads a file, `parse_config(mapping)` a parsed table. Both
report every problem at once as `ConfigError`, each with its TOML path
(`profiles.micro.allowed_leverage: must be >= 1`). Unknown keys are errors,
with a suggestion when one is close (`did you mean "max_age_s"?`).
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import socket
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from supervisor.config.schema import (
    ALERT_FORMATS,
    API_ACCESS,
    COLLAR_POLICIES,
    ESS_CONTRACTS,
    JOURNAL_DURABILITY,
    JOURNAL_POLICIES,
    JOURNAL_WRITERS,
    STORE_BACKENDS,
    WARNING_SCALING,
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
    InstanceConfig,
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
    StoreConfig,
    SupervisionConfig,
    SymbolConfig,
    WebhookConfig,
)
from supervisor.errors import RiskgateError

__all__ = ["ConfigError", "load_config", "parse_config"]


class ConfigError(RiskgateError, ValueError):
    """The configuration is invalid. `problems` lists each with its TOML path."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


_MISSING = object()
_MAX_EXACT_INT = 2**53  # the largest integer a float holds exactly


def _shown(value: Any) -> str:
    """A value for a problem's text, bounded (a 400-digit number or a deep list is not echoed whole)."""
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'table'}"
    if isinstance(value, int) and not isinstance(value, bool) and not -(10**18) < value < 10**18:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Table:
    """Reads one TOML table, recording problems instead of raising."""

    def __init__(self, data: Any, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        if data is _MISSING or data is None:
            data = {}
        if not isinstance(data, Mapping):
            problems.append(f"{path}: must be a table, got {type(data).__name__}")
            data = {}
        self.data = data
        self.seen: set[str] = set()
        self.secret = False  # True: problems never echo a string (a webhook URL pasted in the wrong key)

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, text: str) -> None:
        head, got, value = text.partition(", got ")
        if self.secret and got and value[:1] in ("'", '"'):
            text = head  # a string here may be a secret URL in the wrong key: never echoed
        self.problems.append(f"{self._at(key)}: {text}")

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key, _MISSING)

    def table(self, key: str) -> _Table:
        return _Table(self.raw(key), self._at(key), self.problems)

    def number(
        self,
        key: str,
        default: Any,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        integer: bool = False,
    ) -> Any:
        value = self.raw(key)
        fallback = None if default is _MISSING else default
        if value is _MISSING:
            if default is _MISSING:
                self.problem(key, "is required")
            return fallback
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.problem(key, f"must be {'an integer' if integer else 'a number'}, got {_shown(value)}")
            return fallback
        if isinstance(value, int) and not -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT:
            # A float cannot hold it (OverflowError), nor a limit mean it: refused by its size.
            self.problem(key, f"must be at most {_MAX_EXACT_INT} in size, got {_shown(value)}")
            return fallback
        if not math.isfinite(value):
            self.problem(key, f"must be finite, got {value!r}")
            return fallback
        broken = False
        for bound, op, fails in (
            (gt, ">", gt is not None and not value > gt),
            (ge, ">=", ge is not None and not value >= ge),
            (lt, "<", lt is not None and not value < lt),
            (le, "<=", le is not None and not value <= le),
        ):
            if fails:
                self.problem(key, f"must be {op} {bound}, got {_shown(value)}")
                broken = True
        if broken:
            return fallback
        return value if integer else float(value)

    def optional_number(self, key: str, **bounds: Any) -> float | None:
        if self.raw(key) is _MISSING:
            return None
        value: float | None = self.number(key, None, **bounds)
        return value

    def string(self, key: str, default: Any, choices: tuple[str, ...] | None = None) -> Any:
        value = self.raw(key)
        if value is _MISSING:
            if default is _MISSING:
                self.problem(key, "is required")
                return None
            return default
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"must be a non-empty string, got {_shown(value)}")
            return None if default is _MISSING else default
        if choices is not None and value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)}, got {_shown(value)}")
            return None if default is _MISSING else default
        return value

    def url(self, key: str, default: Any) -> Any:
        value = self.string(key, default)
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            self.problem(key, f"must be an http(s) base URL, got {value!r}")
        return value.rstrip("/") if isinstance(value, str) else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {_shown(value)}")
            return default
        return value

    def strings(self, key: str) -> frozenset[str]:
        value = self.raw(key)
        if value is _MISSING:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"must be a list of strings, got {_shown(value)}")
            return frozenset()
        return frozenset(value)

    def subtables(self) -> list[str]:
        return [k for k, v in self.data.items() if isinstance(v, Mapping)]

    def finish(self) -> None:
        """Every key not read is unknown: named, with the closest known one."""
        for key in self.data:
            if key not in self.seen:
                self.problem(key, "unknown key" + did_you_mean(str(key), self.seen))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`; did you mean "x"?` for the closest known word, or nothing."""
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


_GATE = GateConfig()  # defaults (slotted classes hold descriptors, not values)
_MIN_GC_YOUNG = 100  # below it the collector runs every few allocations: a typo, not a setting


def _gate(t: _Table) -> GateConfig:
    c = GateConfig(
        evaluate_timeout_s=t.number("evaluate_timeout_s", _GATE.evaluate_timeout_s, gt=0, le=60),
        max_orders_per_s=t.number("max_orders_per_s", _GATE.max_orders_per_s, ge=1, integer=True),
        warning_scale_factor=t.number("warning_scale_factor", _GATE.warning_scale_factor, gt=0, le=1),
        reduce_only_when_critical=t.boolean("reduce_only_when_critical", False),
        reservation_ttl_s=t.number("reservation_ttl_s", _GATE.reservation_ttl_s, ge=1, le=86_400),
        collar_pct=t.number("collar_pct", _GATE.collar_pct, gt=0, le=1000),
        collar_missing_reference=t.string("collar_missing_reference", _GATE.collar_missing_reference, COLLAR_POLICIES),
        duplicate_window_s=t.number("duplicate_window_s", _GATE.duplicate_window_s, ge=0, le=86_400),
        max_repeats=t.number("max_repeats", _GATE.max_repeats, ge=1, integer=True),
        max_messages_per_s=t.number("max_messages_per_s", _GATE.max_messages_per_s, ge=1, le=1_000_000, integer=True),
        warning_scaling=t.string("warning_scaling", _GATE.warning_scaling, WARNING_SCALING),
        reduced_tier_scale_factor=t.number("reduced_tier_scale_factor", _GATE.reduced_tier_scale_factor, gt=0, le=1),
        gc_young_threshold=t.number("gc_young_threshold", _GATE.gc_young_threshold, ge=0, le=10_000_000, integer=True),
    )
    if 0 < c.gc_young_threshold < _MIN_GC_YOUNG:
        t.problem("gc_young_threshold", f"must be 0 (leave the process's as it is) or >= {_MIN_GC_YOUNG}, "
                  f"got {c.gc_young_threshold}")  # fmt: skip
    t.finish()
    return c


def _risk_v3(t: _Table) -> RiskV3Config:
    d = RiskV3Config()
    c = RiskV3Config(
        url=t.url("url", d.url),
        poll_interval_s=t.number("poll_interval_s", d.poll_interval_s, gt=0),
        timeout_s=t.number("timeout_s", d.timeout_s, gt=0),
        max_age_s=t.number("max_age_s", d.max_age_s, gt=0, le=3600),
        max_signal_age_s=t.number("max_signal_age_s", d.max_signal_age_s, gt=0, le=86_400),
        max_clock_skew_s=t.number("max_clock_skew_s", d.max_clock_skew_s, ge=0, le=3600),
    )
    if c.max_age_s is not None and c.poll_interval_s is not None and c.max_age_s <= c.poll_interval_s:
        t.problem("max_age_s", f"must be > poll_interval_s ({c.poll_interval_s}), got {c.max_age_s}")
    t.finish()
    return c


_EXCHANGE_ID = re.compile(r"[a-z][a-z0-9_]{1,39}")


def _prices(t: _Table) -> PricesConfig:
    d = PricesConfig()
    url = t.url("url", None) if t.raw("url") is not _MISSING else None
    exchange = t.string("exchange", None)
    if isinstance(exchange, str) and not _EXCHANGE_ID.fullmatch(exchange):
        t.problem("exchange", f"must be a ccxt exchange id (lower case, like binance), got {_shown(exchange)}")
        exchange = None
    c = PricesConfig(
        url=url,
        exchange=exchange,
        symbols=t.strings("symbols"),
        poll_interval_s=t.number("poll_interval_s", d.poll_interval_s, gt=0, le=3600),
        timeout_s=t.number("timeout_s", d.timeout_s, gt=0),
        max_age_s=t.number("max_age_s", d.max_age_s, gt=0, le=3600),
        max_clock_skew_s=t.number("max_clock_skew_s", d.max_clock_skew_s, ge=0, le=3600),
        max_plausible_usd=t.number("max_plausible_usd", d.max_plausible_usd, gt=0),
        spike_pct=t.optional_number("spike_pct", gt=0, le=1000) if t.raw("spike_pct") is not _MISSING else d.spike_pct,
        spike_window_s=t.number("spike_window_s", d.spike_window_s, gt=0, le=86_400),
        spike_pause_s=t.number("spike_pause_s", d.spike_pause_s, ge=0, le=86_400),
    )
    if url is not None and exchange is not None:
        t.problem("exchange", "give url or exchange, not both (one prices source)")
    if t.data and not c.enabled:
        t.problems.append(f"{t.path}: url or exchange is required (which source gives the prices)")
    if isinstance(c.max_age_s, float) and isinstance(c.poll_interval_s, float) and c.max_age_s <= c.poll_interval_s:
        t.problem("max_age_s", f"must be > poll_interval_s ({c.poll_interval_s}), got {c.max_age_s}")
    window, poll = c.spike_window_s, c.poll_interval_s
    if isinstance(window, float) and isinstance(poll, float) and window < 2 * poll:
        # A window one poll wide holds one mark: no move within it could ever be seen.
        t.problem("spike_window_s", f"must be >= 2 x poll_interval_s ({2 * poll:g}), got {window:g}")
    t.finish()
    return c


def _ess(t: _Table) -> EssConfig:
    d = EssConfig()
    url = t.url("url", None) if t.raw("url") is not _MISSING else None
    contract = t.string("contract", d.contract, tuple(ESS_CONTRACTS))
    path = t.string("path", ESS_CONTRACTS.get(contract, d.path))
    if isinstance(path, str) and not path.startswith("/"):
        t.problem("path", f"must start with '/', got {path!r}")
    c = EssConfig(
        url=url,
        kill_switch_file=t.string("kill_switch_file", None),
        poll_interval_s=t.number("poll_interval_s", d.poll_interval_s, gt=0),
        timeout_s=t.number("timeout_s", d.timeout_s, gt=0),
        max_age_s=t.number("max_age_s", d.max_age_s, gt=0, le=3600),
        contract=contract,
        path=path,
        cancel_open_orders_on_halt=t.boolean("cancel_open_orders_on_halt", d.cancel_open_orders_on_halt),
    )
    if c.url is None and c.kill_switch_file is None:
        t.problems.append(f"{t.path}: at least one of url, kill_switch_file is required")
    if c.max_age_s is not None and c.poll_interval_s is not None and c.max_age_s <= c.poll_interval_s:
        t.problem("max_age_s", f"must be > poll_interval_s ({c.poll_interval_s}), got {c.max_age_s}")
    t.finish()
    return c


def _accounts(
    t: _Table, profiles: Mapping[str, ProfileConfig], exchanges: Mapping[str, ExchangeConfig]
) -> AccountsConfig:
    d = AccountsConfig()
    snapshot_url = t.url("snapshot_url", None) if t.raw("snapshot_url") is not _MISSING else None
    accounts: dict[str, AccountConfig] = {}
    for name in t.subtables():
        a = t.table(name)
        profile = a.string("capital_profile", _MISSING)
        if profile is not None and profile not in profiles:
            a.problem("capital_profile", f"names a missing profile {profile!r}" + did_you_mean(profile, profiles))
        exchange = a.string("exchange", _MISSING)
        if exchange is not None and exchange not in exchanges:
            known = ", ".join(sorted(exchanges)) or "none"
            a.problem(
                "exchange",
                f"names {exchange!r}, which has no [exchanges.{exchange}] table (known: {known})"
                + did_you_mean(exchange, exchanges),
            )
        accounts[name] = AccountConfig(
            name=name,
            exchange=exchange,
            capital_profile=profile,
            max_notional_usd=a.optional_number("max_notional_usd", gt=0),
            takes_pushes=a.boolean("takes_pushes", False),
        )
        a.finish()
    c = AccountsConfig(
        snapshot_url=snapshot_url,
        poll_interval_s=t.number("poll_interval_s", d.poll_interval_s, gt=0),
        timeout_s=t.number("timeout_s", d.timeout_s, gt=0),
        max_age_s=t.number("max_age_s", d.max_age_s, gt=0, le=86_400),
        max_plausible_usd=t.number("max_plausible_usd", d.max_plausible_usd, gt=0),
        max_clock_skew_s=t.number("max_clock_skew_s", d.max_clock_skew_s, ge=0, le=3600),
        accounts=accounts,
    )
    t.finish()
    return c


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_OPERATOR_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _principals(
    t: _Table, environ: Mapping[str, str], role: str, seen: dict[str, str], accounts: Iterable[str] = ()
) -> dict[str, OperatorConfig]:
    """`[api.operators.NAME]` or `[api.clients.NAME]`: a token (its SHA-256) per name, and
    for a client the `accounts` it may act for (default: all). `seen` maps each hash to
    who holds it, across both tables."""
    out: dict[str, OperatorConfig] = {}
    known = sorted(accounts)
    for name in t.subtables():
        o = t.table(name)
        scope = None
        if role == "client" and o.raw("accounts") is not _MISSING:
            listed = o.strings("accounts")
            unknown = sorted(a for a in listed if a not in known)
            if not isinstance(o.raw("accounts"), list):
                pass  # said by strings()
            elif unknown:
                o.problem(
                    "accounts", f"names {unknown[0]!r}, not a configured account" + did_you_mean(unknown[0], known)
                )
            elif not listed:
                o.problem("accounts", "must name at least one account (leave it out for every account)")
            scope = listed
        if not _OPERATOR_NAME.fullmatch(name):
            t.problem(name, f"a{'n' if role[0] in 'aeiou' else ''} {role} name is 1-64 letters, digits or _.@-")
        digest = o.string("token_sha256", None)
        env = o.string("token_env", None)
        if digest is not None and env is not None:
            o.problem("token_env", "give token_sha256 or token_env, not both")
        elif digest is None and env is None:
            o.problem("token_sha256", "is required (or token_env: an environment variable holding the token)")
        elif digest is not None and not _SHA256_HEX.fullmatch(digest):
            o.problem("token_sha256", "must be 64 lowercase hex digits (sha256sum of the token)")
        elif digest == _EMPTY_SHA256:
            o.problem("token_sha256", "is the SHA-256 of an empty token")
        elif env is not None:
            token = environ.get(env)
            if token is None or len(token.strip()) < 16 or token != token.strip():
                o.problem(
                    "token_env", f"environment variable {env} must hold a token of at least 16 characters, no spaces"
                )
            else:
                digest = hashlib.sha256(token.encode()).hexdigest()
        o.finish()
        folded = f"name:{name.casefold()}"
        if folded in seen:
            t.problem(name, f"is the same name as {seen[folded]} but for case: names must tell people apart")
        seen[folded] = f"{role} {name!r}"
        if digest is not None and _SHA256_HEX.fullmatch(digest) and digest != _EMPTY_SHA256:
            if digest in seen:
                t.problem(name, f"has the same token as {seen[digest]}: every operator and client needs its own")
            seen[digest] = f"{role} {name!r}"
            out[name] = OperatorConfig(name=name, token_sha256=digest, accounts=scope)
    t.finish()  # a key that is not a table
    return out


_MAX_SOCKET_PATH = 100  # a Unix socket's path: 108 bytes in Linux's sockaddr_un, 104 in the BSDs'


def _api(t: _Table, environ: Mapping[str, str], accounts: Iterable[str]) -> ApiConfig:
    d = ApiConfig()
    seen: dict[str, str] = {}
    c = ApiConfig(
        enabled=t.boolean("enabled", d.enabled),
        host=t.string("host", d.host),
        port=t.number("port", d.port, ge=0, le=65_535, integer=True),
        read_access=t.string("read_access", d.read_access, API_ACCESS),
        execution_access=t.string("execution_access", d.execution_access, API_ACCESS),
        max_connections=t.number("max_connections", d.max_connections, ge=8, le=100_000, integer=True),
        operator_reserve=t.number("operator_reserve", d.operator_reserve, ge=1, le=10_000, integer=True),
        request_timeout_s=t.number("request_timeout_s", d.request_timeout_s, gt=0, le=300),
        order_socket=t.string("order_socket", d.order_socket),
        order_socket_idle_s=t.number("order_socket_idle_s", d.order_socket_idle_s, gt=0, le=86_400),
        operators=_principals(t.table("operators"), environ, "operator", seen),
        clients=_principals(t.table("clients"), environ, "client", seen, accounts),
    )
    if c.order_socket and not c.enabled:
        t.problem("order_socket", "is served with the API: set api.enabled = true, or leave the socket out")
    if c.scoped and c.execution_access == "open":
        # Anyone may act without a token: a client held to some accounts would just leave its token out.
        t.problem("execution_access", 'must be "token" when a client is held to some accounts (api.clients.*.accounts)')
    t.finish()
    return c


_WEBHOOK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _webhook_url_problem(url: str) -> str | None:
    """Why `url` cannot take alerts, or None. The URL itself is never echoed:
    a Slack webhook URL is a secret."""
    if url != url.strip() or any(c.isspace() or ord(c) < 32 for c in url):
        return "must be an http(s) URL without spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return "must be an http(s) URL (this one cannot be parsed)"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must be an http(s) URL with a host"
    return None


def _url_identity(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower().rstrip(".")
    return f"{scheme}://{host}:{port}{parts.path or '/'}?{parts.query}"


def _webhooks(t: _Table, environ: Mapping[str, str]) -> dict[str, WebhookConfig]:
    """`[alerts.webhooks.NAME]`: `url` or `url_env` (exactly one), format, timeout_s, max_backoff_s."""
    d = WebhookConfig(name="", url="")
    out: dict[str, WebhookConfig] = {}
    names: dict[str, str] = {}
    urls: dict[str, str] = {}
    for name in t.subtables():
        w = t.table(name)
        w.secret = True
        if not _WEBHOOK_NAME.fullmatch(name):
            t.problem(name, "a webhook name is 1-64 letters, digits or _.-")
        folded = name.casefold()
        if folded in names:
            t.problem(name, f"is the same name as webhook {names[folded]!r} but for case")
        names[folded] = name
        url = w.string("url", None)
        env = w.string("url_env", None)
        if url is not None and env is not None:
            w.problem("url_env", "give url or url_env, not both")
            url = None
        elif url is None and env is None:
            if w.raw("url") is _MISSING and w.raw("url_env") is _MISSING:
                w.problem("url", "is required (or url_env: an environment variable holding the URL)")
        elif env is not None:
            url = environ.get(env)
            if url is None or not url.strip():
                w.problem("url_env", f"environment variable {env} is not set (or empty)")
                url = None
        if url is not None:
            problem = _webhook_url_problem(url)
            if problem is not None:
                w.problem("url_env" if env is not None else "url", problem)
                url = None
        hook = WebhookConfig(
            name=name,
            url=url or "",
            format=w.string("format", d.format, ALERT_FORMATS),
            timeout_s=w.number("timeout_s", d.timeout_s, gt=0, le=60),
            max_backoff_s=w.number("max_backoff_s", d.max_backoff_s, ge=1, le=3600),
        )
        w.finish()
        if url is not None:
            same = _url_identity(url)  # HTTPS://Host:443/x and https://host/x are one webhook
            if same in urls:
                t.problem(name, f"has the same URL as webhook {urls[same]!r}: each alert would be sent twice")
            urls[same] = name
            out[name] = hook
    for key in t.data:
        if not isinstance(t.data[key], Mapping):
            t.problem(key, "must be a table with url (or url_env), format, timeout_s, max_backoff_s")
    t.seen.update(t.data)
    return out


def _alerts(t: _Table, environ: Mapping[str, str]) -> AlertsConfig:
    d = AlertsConfig()
    c = AlertsConfig(
        enabled=t.boolean("enabled", d.enabled),
        interval_s=t.number("interval_s", d.interval_s, gt=0, le=5),
        startup_grace_s=t.number("startup_grace_s", d.startup_grace_s, ge=0, le=3600),
        block_rate_per_account_per_min=t.number(
            "block_rate_per_account_per_min", d.block_rate_per_account_per_min, ge=1, integer=True
        ),
        block_rate_per_reason_per_min=t.number(
            "block_rate_per_reason_per_min", d.block_rate_per_reason_per_min, ge=1, integer=True
        ),
        source_stale_s=t.number("source_stale_s", d.source_stale_s, ge=0, le=86_400),
        actor_restarts=t.number("actor_restarts", d.actor_restarts, ge=1, integer=True),
        webhooks=_webhooks(t.table("webhooks"), environ),
    )
    t.finish()
    return c


def _folded(names: frozenset[str]) -> frozenset[str]:
    """Strategy names compare case-insensitively, without surrounding spaces."""
    return frozenset(n.strip().casefold() for n in names)


_INSTANCE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DSN_KEYWORD = re.compile(r"\s*[a-z_]+\s*=")


def _store(t: _Table, environ: Mapping[str, str]) -> StoreConfig:
    """`[store]`: backend, `dsn` or `dsn_env` (postgresql only, exactly one), the round's timing
    and the leases'. A DSN may hold a password: a problem never echoes it."""
    t.secret = True
    d = StoreConfig()
    backend = t.string("backend", d.backend, STORE_BACKENDS)
    dsn = t.string("dsn", None)
    env = t.string("dsn_env", None)
    if dsn is not None and env is not None:
        t.problem("dsn_env", "give dsn or dsn_env, not both")
        dsn = None
    elif env is not None:
        dsn = environ.get(env)
        if dsn is None or not dsn.strip():
            t.problem("dsn_env", f"environment variable {env} is not set (or empty)")
            dsn = None
    if backend == "postgresql" and dsn is None and t.raw("dsn") is _MISSING and t.raw("dsn_env") is _MISSING:
        t.problem("dsn", 'is required with backend = "postgresql" (or dsn_env: an environment variable holding it)')
    if dsn is not None and not (dsn.startswith(("postgresql://", "postgres://")) or _DSN_KEYWORD.match(dsn)):
        t.problem("dsn_env" if env is not None else "dsn",
                  "must be a postgresql:// URL or libpq key=value pairs (host=... dbname=...)")  # fmt: skip
        dsn = None
    if dsn is not None and _dsn_unreadable(dsn):
        t.problem("dsn_env" if env is not None else "dsn",
                  "cannot be read as a libpq connection string (not shown: it may hold a password)")  # fmt: skip
        dsn = None
    if backend == "sqlite" and (dsn is not None or env is not None):
        t.problem("backend", 'dsn is set but backend is "sqlite": set backend = "postgresql" to share state')
    store = StoreConfig(
        backend=backend,
        dsn=dsn,
        poll_interval_s=t.number("poll_interval_s", d.poll_interval_s, gt=0, le=60),
        timeout_s=t.number("timeout_s", d.timeout_s, gt=0, le=60),
        max_age_s=t.number("max_age_s", d.max_age_s, gt=0, le=3600),
        lease_ttl_s=t.number("lease_ttl_s", d.lease_ttl_s, gt=0, le=3600),
        lease_slice_pct=t.number("lease_slice_pct", d.lease_slice_pct, gt=0, le=100),
    )
    t.finish()
    if isinstance(store.poll_interval_s, float) and isinstance(store.max_age_s, float):
        if store.max_age_s <= store.poll_interval_s:
            t.problem("max_age_s", f"must be > store.poll_interval_s ({store.poll_interval_s}), got {store.max_age_s}")
        if isinstance(store.lease_ttl_s, float) and store.lease_ttl_s < 2 * store.poll_interval_s:
            t.problem("lease_ttl_s", f"must be >= 2 x store.poll_interval_s ({store.poll_interval_s}), "
                      f"got {store.lease_ttl_s}")  # fmt: skip
    return store


def _dsn_unreadable(dsn: str) -> bool:
    """True when libpq would refuse to parse the DSN (psycopg installed); False when it parses
    or psycopg is not installed (the backend then says what to install)."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return False
    try:
        conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - any refusal: the DSN is unusable
        return True
    return False


def _instance(t: _Table, environ: Mapping[str, str]) -> InstanceConfig:
    """`[instance] name`: unique per desk (the host name by default)."""
    name = t.string("name", None)
    t.finish()
    if name is None:
        name = environ.get("RISKGATE_INSTANCE") or socket.gethostname() or "riskgate"
        if not _INSTANCE_NAME.fullmatch(name):  # a host name with other characters: made usable
            name = re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64] or "riskgate"
    elif not _INSTANCE_NAME.fullmatch(name):
        t.problem("name", f"must be 1-64 letters, digits or _.-, got {_shown(name)}")
    return InstanceConfig(name=name)


def _profiles(t: _Table) -> dict[str, ProfileConfig]:
    out: dict[str, ProfileConfig] = {}
    for name in t.subtables():
        p = t.table(name)
        out[name] = ProfileConfig(
            name=name,
            max_daily_loss_pct=p.number("max_daily_loss_pct", _MISSING, lt=0, ge=-100),
            max_weekly_loss_pct=p.number("max_weekly_loss_pct", _MISSING, lt=0, ge=-100),
            max_single_trade_risk_pct=p.number("max_single_trade_risk_pct", _MISSING, gt=0, le=100),
            max_open_positions=p.number("max_open_positions", _MISSING, ge=0, integer=True),
            allowed_leverage=p.number("allowed_leverage", _MISSING, ge=1),
            max_order_notional_usd=p.optional_number("max_order_notional_usd", gt=0),
            max_drawdown_pct=p.optional_number("max_drawdown_pct", gt=0, le=100),
            cooldown_minutes=p.optional_number("cooldown_minutes", gt=0, le=10_080),
            whitelist=_folded(p.strings("whitelist")),
            blacklist=_folded(p.strings("blacklist")),
        )
        p.finish()
    for key in t.data:
        if not isinstance(t.data[key], Mapping):
            t.problem(key, "must be a table of profile limits")
    t.seen.update(t.data)
    if not out:
        t.problems.append(f"{t.path}: at least one capital profile is required")
    return out


def _exchanges(t: _Table) -> dict[str, ExchangeConfig]:
    out: dict[str, ExchangeConfig] = {}
    for name in t.subtables():
        e = t.table(name)
        out[name] = ExchangeConfig(name=name, max_notional_usd=e.optional_number("max_notional_usd", gt=0))
        e.finish()
    for key in t.data:
        if not isinstance(t.data[key], Mapping):
            t.problem(key, "must be a table")
    t.seen.update(t.data)
    return out


def _symbols(t: _Table) -> dict[str, SymbolConfig]:
    out: dict[str, SymbolConfig] = {}
    for name in t.subtables():
        s = t.table(name)
        out[name] = SymbolConfig(
            name=name,
            lot_step=s.number("lot_step", _MISSING, gt=0),
            min_qty=s.number("min_qty", _MISSING, ge=0),
            min_notional=s.number("min_notional", 0.0, ge=0),
            max_qty=s.optional_number("max_qty", gt=0),
            collar_pct=s.optional_number("collar_pct", gt=0, le=1000),
            collar_missing_reference=s.string("collar_missing_reference", None, COLLAR_POLICIES),
        )
        if "/" in name or ":" in name:
            t.problem(
                name,
                f"name the symbol as the gate does ({name.split(':', 1)[0].replace('/', '')}): "
                "orders in exchange-unified form (BTC/USDT) are read as that",
            )
        cfg = out[name]
        if isinstance(cfg.max_qty, float) and isinstance(cfg.min_qty, float) and cfg.max_qty < cfg.min_qty:
            s.problem("max_qty", f"must be >= min_qty ({cfg.min_qty}), got {cfg.max_qty}")
        s.finish()
    for key in t.data:
        if not isinstance(t.data[key], Mapping):
            t.problem(key, "must be a table with lot_step, min_qty, min_notional")
    t.seen.update(t.data)
    return out


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    source: str = "config",
    origin: str = "<in memory>",
    digest: str = "",
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate a parsed TOML document. Raises `ConfigError` listing every problem."""
    problems: list[str] = []
    root = _Table(data, "", problems)
    gate = _gate(root.table("gate"))
    risk_v3 = _risk_v3(root.table("risk_v3"))
    prices = _prices(root.table("prices"))
    gate_data = data.get("gate")
    if prices.enabled and not (isinstance(gate_data, Mapping) and "collar_missing_reference" in gate_data):
        # A gate with a price reference of its own never trusts the caller's word alone.
        gate = replace(gate, collar_missing_reference="block")
    ess = _ess(root.table("ess"))
    profiles = _profiles(root.table("profiles"))
    exchanges = _exchanges(root.table("exchanges"))
    accounts = _accounts(root.table("accounts"), profiles, exchanges)
    strategies = root.table("strategies")
    global_blacklist = _folded(strategies.strings("global_blacklist"))
    strategies.finish()
    symbols = _symbols(root.table("symbols"))
    for name in sorted(prices.symbols - set(symbols)):
        problems.append(f"prices.symbols: {name!r} has no [symbols.{name}] table" + did_you_mean(name, symbols))
    periods_t = root.table("periods")
    periods = PeriodsConfig(
        daily_reset_hour_utc=periods_t.number("daily_reset_hour_utc", 0, ge=0, le=23, integer=True),
        weekly_reset_day=periods_t.string("weekly_reset_day", "monday", WEEKDAYS),
    )
    periods_t.finish()
    state_t = root.table("state")
    state_dir = Path(state_t.string("dir", "state"))
    state_t.finish()
    env = os.environ if environ is None else environ
    store = _store(root.table("store"), env)
    instance = _instance(root.table("instance"), env)
    health_t = root.table("health")
    health = HealthConfig(interval_s=health_t.number("interval_s", HealthConfig().interval_s, gt=0))
    health_t.finish()
    sup_t = root.table("supervision")
    d_sup = SupervisionConfig()
    supervision = SupervisionConfig(
        check_interval_s=sup_t.number("check_interval_s", d_sup.check_interval_s, gt=0),
        heartbeat_timeout_s=sup_t.number("heartbeat_timeout_s", d_sup.heartbeat_timeout_s, gt=0),
        backoff_initial_s=sup_t.number("backoff_initial_s", d_sup.backoff_initial_s, gt=0),
        backoff_max_s=sup_t.number("backoff_max_s", d_sup.backoff_max_s, gt=0),
    )
    sup_t.finish()
    journal_t = root.table("journal")
    d_j = JournalConfig()
    journal = JournalConfig(
        enabled=journal_t.boolean("enabled", d_j.enabled),
        flush_interval_s=journal_t.number("flush_interval_s", d_j.flush_interval_s, gt=0, le=10),
        on_failure=journal_t.string("on_failure", d_j.on_failure, JOURNAL_POLICIES),
        max_queue=journal_t.number("max_queue", d_j.max_queue, ge=100, integer=True),
        retention_days=journal_t.number("retention_days", d_j.retention_days, gt=0),
        writer=journal_t.string("writer", d_j.writer, JOURNAL_WRITERS),
        durability=journal_t.string("durability", d_j.durability, JOURNAL_DURABILITY),
    )
    if journal.durability == "commit" and not (journal.enabled and journal.on_failure == "block"):
        journal_t.problem("durability", 'commit needs journal.enabled = true and journal.on_failure = "block"')
    journal_t.finish()
    api = _api(root.table("api"), os.environ if environ is None else environ, accounts.accounts)
    metrics_t = root.table("metrics")
    metrics = MetricsConfig(enabled=metrics_t.boolean("enabled", MetricsConfig().enabled))
    metrics_t.finish()
    overrides_t = root.table("overrides")
    d_o = OverridesConfig()
    overrides = OverridesConfig(
        approval_timeout_s=overrides_t.number("approval_timeout_s", d_o.approval_timeout_s, gt=0, le=86_400),
        max_ttl_s=overrides_t.number("max_ttl_s", d_o.max_ttl_s, gt=0, le=86_400),
        lockout_clear_two_person=overrides_t.boolean("lockout_clear_two_person", d_o.lockout_clear_two_person),
    )
    overrides_t.finish()
    alerts = _alerts(root.table("alerts"), os.environ if environ is None else environ)
    shadow_t = root.table("shadow")
    candidate = shadow_t.string("config", None)
    shadow = ShadowConfig(
        config=Path(candidate) if isinstance(candidate, str) else None,
        poll_interval_s=shadow_t.number("poll_interval_s", ShadowConfig().poll_interval_s, gt=0, le=60),
    )
    if shadow.config is not None and not journal.enabled:
        shadow_t.problem("config", "needs journal.enabled = true: the shadow decides what the journal recorded")
    shadow_t.finish()
    root.finish()
    # A poll holds its actor for up to timeout_s; a ping queued behind it must
    # still be answered within heartbeat_timeout_s, or a slow upstream gets its
    # (healthy) poller restarted again and again.
    beat = supervision.heartbeat_timeout_s
    timeouts: tuple[tuple[str, float], ...] = (
        ("risk_v3", risk_v3.timeout_s),
        ("ess", ess.timeout_s),
        ("accounts", accounts.timeout_s),
    )
    if prices.enabled:
        timeouts += (("prices", prices.timeout_s),)
    if store.shared:
        timeouts += (("store", store.timeout_s),)
    for section, timeout in timeouts:
        if isinstance(timeout, float) and isinstance(beat, float) and timeout >= beat:
            problems.append(f"{section}.timeout_s: must be < supervision.heartbeat_timeout_s ({beat}), got {timeout}")

    if store.shared and isinstance(store.lease_ttl_s, float) and store.lease_ttl_s < gate.reservation_ttl_s:
        # A killed instance's leases come back after their TTL: by then what it approved and
        # never heard of again has expired too (its orders no longer count anywhere).
        problems.append(f"store.lease_ttl_s: must be >= gate.reservation_ttl_s ({gate.reservation_ttl_s}), "
                        f"got {store.lease_ttl_s}")  # fmt: skip
    if base_dir is not None and not state_dir.is_absolute():
        state_dir = base_dir / state_dir
    if shadow.config is not None and base_dir is not None and not shadow.config.is_absolute():
        shadow = replace(shadow, config=base_dir / shadow.config)
    if ess.kill_switch_file and base_dir is not None and not Path(ess.kill_switch_file).is_absolute():
        ess = replace(ess, kill_switch_file=str(base_dir / ess.kill_switch_file))
    if api.order_socket:
        if base_dir is not None and not Path(api.order_socket).is_absolute():
            api = replace(api, order_socket=str(base_dir / api.order_socket))
        size = len(api.order_socket.encode("utf-8", "surrogatepass"))
        if size > _MAX_SOCKET_PATH or "\0" in api.order_socket:
            problems.append(f"api.order_socket: must be a path of at most {_MAX_SOCKET_PATH} bytes without NUL "
                            f"(a Unix socket's; relative paths are taken from the config file's folder), "
                            f"got {size} bytes")  # fmt: skip
    if problems:
        raise ConfigError(problems, source)
    return Config(
        gate=gate,
        risk_v3=risk_v3,
        prices=prices,
        ess=ess,
        accounts=accounts,
        exchanges=exchanges,
        profiles=profiles,
        global_blacklist=global_blacklist,
        symbols=symbols,
        periods=periods,
        state=StateConfig(dir=state_dir),
        store=store,
        instance=instance,
        health=health,
        supervision=supervision,
        journal=journal,
        api=api,
        metrics=metrics,
        overrides=overrides,
        alerts=alerts,
        shadow=shadow,
        origin=origin,
        digest=digest,
    )


_MAX_FILE_BYTES = 1_000_000
_MAX_DOTS_PER_LINE = 64


def _shape_problem(text: str) -> str | None:
    """Why the text is refused before TOML parsing, or None. tomllib takes time
    quadratic in a key's depth (`a.a.a...` 50,000 deep: over a minute): a reload
    must never hang on a file like that."""
    if len(text) > _MAX_FILE_BYTES:
        return f"larger than {_MAX_FILE_BYTES:,} characters: not a configuration"
    for number, line in enumerate(text.splitlines(), 1):
        if line.count(".") > _MAX_DOTS_PER_LINE and line.split("#", 1)[0].count(".") > _MAX_DOTS_PER_LINE:
            return f"line {number}: more than {_MAX_DOTS_PER_LINE} dots (a key nested that deep is refused)"
    return None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file (`environ`: the environment its `*_env` keys name, default
    this process's). Raises `ConfigError` listing every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        hint = f"no such file (`riskgate init-config {path}` writes the documented example to edit)"
        raise ConfigError([f"cannot read file: {hint}"], str(path)) from exc
    except OSError as exc:
        raise ConfigError([f"cannot read file: {exc.strerror or exc}"], str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc.reason} at byte {exc.start}"], str(path)) from exc
    shape = _shape_problem(text)
    if shape is not None:
        raise ConfigError([shape], str(path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise ConfigError([f"not readable TOML: {str(exc).split(';')[0]}"], str(path)) from exc
    except RecursionError as exc:
        raise ConfigError(["not readable TOML: arrays or tables nested too deeply"], str(path)) from exc
    resolved = path.resolve()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        return parse_config(
            data, base_dir=resolved.parent, source=str(path), origin=str(resolved), digest=digest, environ=environ
        )
    except ConfigError:
        raise
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        # A shape no check above foresaw: still a problem with the file, never a crash.
        raise ConfigError([f"cannot be read as a configuration: {type(exc).__name__}: {exc}"[:300]], str(path)) from exc
