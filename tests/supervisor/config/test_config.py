"""Config: the shipped file is valid; every problem is reported at once with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.cli import main
from supervisor.config import ConfigError, load_config, parse_config
from tests.helpers import config_dict

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_config_is_valid_and_has_design_profiles():
    cfg = load_config(ROOT / "config.toml")
    expected = {
        "micro": (-0.5, -2.0, 0.2, 2, 1.0),
        "low": (-1.0, -3.5, 0.5, 3, 2.0),
        "normal": (-2.0, -7.0, 1.0, 5, 3.0),
        "aggressive": (-3.5, -12.0, 2.0, 8, 5.0),
    }
    for name, limits in expected.items():
        p = cfg.profiles[name]
        assert (
            p.max_daily_loss_pct,
            p.max_weekly_loss_pct,
            p.max_single_trade_risk_pct,
            p.max_open_positions,
            p.allowed_leverage,
        ) == limits
    assert {a.exchange for a in cfg.accounts.accounts.values()} >= {"binance", "bybit"}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} <= set(cfg.symbols)
    assert cfg.risk_v3.max_signal_age_s >= 600 > cfg.risk_v3.max_age_s
    assert cfg.state.dir.is_absolute()  # resolved against the file's folder


def test_defaults_fill_missing_optional_sections():
    data = config_dict()
    del data["gate"]
    cfg = parse_config(data)
    assert cfg.gate.warning_scale_factor == 0.5 and cfg.gate.max_orders_per_s == 20
    assert cfg.health.interval_s == 30.0 and cfg.periods.weekly_reset_day == "monday"


def test_every_problem_reported_at_once_with_its_path():
    data = config_dict(gate={"warning_scale_factor": 1.5, "max_orders_per_s": "ten", "colour": "red"})
    data["profiles"]["micro"]["allowed_leverage"] = 0.5
    data["profiles"]["low"]["max_daily_loss_pct"] = 1.0
    data["accounts"]["main"]["capital_profile"] = "yolo"
    data["symbols"]["BTCUSDT"]["lot_step"] = 0
    data["ess"] = {"poll_interval_s": 1.0}
    data["mystery"] = {}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    problems = "\n".join(info.value.problems)
    for expected in (
        "gate.warning_scale_factor: must be <= 1",
        "gate.max_orders_per_s: must be an integer",
        "gate.colour: unknown key",
        "profiles.micro.allowed_leverage: must be >= 1",
        "profiles.low.max_daily_loss_pct: must be < 0",
        "accounts.main.capital_profile: names a missing profile 'yolo'",
        "symbols.BTCUSDT.lot_step: must be > 0",
        "ess: at least one of url, kill_switch_file is required",
        "mystery: unknown key",
    ):
        assert expected in problems
    assert len(info.value.problems) == 9


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("gate", "warning_scale_factor", 0.0, "must be > 0"),
        ("gate", "reduce_only_when_critical", "no", "must be true or false"),
        ("gate", "evaluate_timeout_s", float("nan"), "must be finite"),
        ("risk_v3", "url", "ftp://x", "http(s) base URL"),
        ("risk_v3", "max_age_s", 1.0, "must be > poll_interval_s"),
        ("periods", "weekly_reset_day", "someday", "must be one of"),
        ("health", "interval_s", True, "must be a number"),
        ("journal", "writer", "fork", "must be one of"),
        ("journal", "writer", 1, "must be"),
        ("gate", "gc_young_threshold", -1, "must be >= 0"),
        ("gate", "gc_young_threshold", 50, "must be 0 (leave the process's as it is) or >= 100"),
        ("gate", "gc_young_threshold", 2000.5, "must be an integer"),
        ("gate", "gc_young_threshold", "20000", "must be an integer"),
        ("gate", "gc_young_threshold", True, "must be an integer"),
        ("gate", "gc_young_threshold", 10**12, "must be <= 10000000"),
    ],
)
def test_single_bad_value_names_its_key(section, key, value, message):
    with pytest.raises(ConfigError) as info:
        parse_config(config_dict(**{section: {key: value}}))
    assert any(p.startswith(f"{section}.{key}:") and message in p for p in info.value.problems), info.value.problems


def test_account_missing_required_keys_and_bad_cap():
    data = config_dict()
    data["accounts"]["broken"] = {"max_notional_usd": -5}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert set(info.value.problems) >= {
        "accounts.broken.capital_profile: is required",
        "accounts.broken.exchange: is required",
        "accounts.broken.max_notional_usd: must be > 0, got -5",
    }


def test_load_config_unreadable_or_not_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gate\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_config_is_frozen():
    cfg = parse_config(config_dict())
    with pytest.raises(AttributeError):
        cfg.gate.max_orders_per_s = 99  # type: ignore[misc]


def test_check_config_cli_exit_codes(tmp_path, capsys):
    assert main(["check-config", str(ROOT / "config.toml")]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config.toml").read_text().replace("allowed_leverage = 1.0", "allowed_leverage = 0.5"))
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "profiles.micro.allowed_leverage: must be >= 1" in err


def test_an_account_on_an_exchange_the_config_does_not_know_is_refused_with_a_suggestion():
    data = config_dict()
    data["accounts"]["main"]["exchange"] = "binanse"
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [
        (
            "accounts.main.exchange: names 'binanse', which has no [exchanges.binanse] table"
            ' (known: binance, bybit); did you mean "binance"?'
        )
    ]


@pytest.mark.parametrize(
    ("section", "key", "suggestion"),
    [
        ("risk_v3", "max_age", 'did you mean "max_age_s"?'),
        ("gate", "max_order_per_s", 'did you mean "max_orders_per_s"?'),
        (None, "gates", 'did you mean "gate"?'),
        ("ess", "kill_swich_file", 'did you mean "kill_switch_file"?'),
    ],
)
def test_an_unknown_key_names_the_closest_known_one(section, key, suggestion):
    data = config_dict()
    (data if section is None else data[section])[key] = {} if section is None else 1
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert len(info.value.problems) == 1 and info.value.problems[0].endswith(f"unknown key; {suggestion}")


def test_the_example_config_installed_with_the_package_is_the_shipped_one():
    from importlib import resources

    packaged = resources.files("supervisor.config").joinpath("example.toml").read_text(encoding="utf-8")
    assert packaged == (ROOT / "config.toml").read_text(encoding="utf-8")


def test_a_loaded_config_knows_its_file_and_its_sha256(tmp_path):
    import hashlib

    path = tmp_path / "c.toml"
    path.write_bytes((ROOT / "config.toml").read_bytes())
    cfg = load_config(path)
    assert cfg.origin == str(path.resolve())
    assert cfg.digest == hashlib.sha256(path.read_bytes()).hexdigest()


# -- [api] and [metrics] -------------------------------------------------------------------

_HASH = "a" * 64


def _problems(**api) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(config_dict(api=api), environ={})
    return exc.value.problems


def test_api_defaults_serve_loopback_on_8010_with_open_reads_and_no_operators():
    cfg = parse_config(config_dict())
    assert (cfg.api.enabled, cfg.api.host, cfg.api.port, cfg.api.read_access) == (True, "127.0.0.1", 8010, "open")
    assert cfg.api.operators == {} and cfg.metrics.enabled is True


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ({"port": 70_000}, "api.port: must be <= 65535"),
        ({"port": "8010"}, "api.port: must be an integer"),
        ({"read_access": "public"}, "api.read_access: must be one of open, token"),
        ({"operators": {"alice": {}}}, "api.operators.alice.token_sha256: is required"),
        (
            {"operators": {"alice": {"token_sha256": "abc"}}},
            "api.operators.alice.token_sha256: must be 64 lowercase hex",
        ),
        ({"operators": {"alice": {"token_sha256": _HASH.upper()}}}, "api.operators.alice.token_sha256: must be 64"),
        ({"operators": {"alice": {"token_sha256": _HASH, "token_env": "X"}}}, "api.operators.alice.token_env: give"),
        ({"operators": {"alice": {"token_env": "RISKGATE_NOT_SET"}}}, "api.operators.alice.token_env: environment"),
        ({"operators": {"alice": {"token_sha256": _HASH, "role": "admin"}}}, "api.operators.alice.role: unknown key"),
        ({"operators": {"alice": "secret"}}, "api.operators.alice: unknown key"),
        ({"operators": {"al ice": {"token_sha256": _HASH}}}, "api.operators.al ice: an operator name is"),
        ({"operators": {"a": {"token_sha256": _HASH}, "b": {"token_sha256": _HASH}}}, "has the same token as operator"),
        ({"tokens": []}, "api.tokens: unknown key"),
    ],
)
def test_api_problems_name_their_key(api, message):
    problems = _problems(**api)
    assert any(message in p for p in problems), problems


def test_an_operator_token_can_come_from_the_environment_hashed_at_load():
    import hashlib

    token = "from-the-environment-0123"
    data = config_dict(api={"operators": {"bob": {"token_env": "RISKGATE_TOKEN_BOB"}}})
    cfg = parse_config(data, environ={"RISKGATE_TOKEN_BOB": token})
    assert cfg.api.operators["bob"].token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(cfg)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        parse_config(data, environ={"RISKGATE_TOKEN_BOB": "short"})


def test_metrics_problems_name_their_key():
    with pytest.raises(ConfigError, match=r"metrics.enabled: must be true or false"):
        parse_config(config_dict(metrics={"enabled": "yes"}))
