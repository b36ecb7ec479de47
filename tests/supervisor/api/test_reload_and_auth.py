"""Config reload (POST /v1/reload) and operator tokens, over real HTTP, from a real file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from supervisor import AccountSnapshot, RiskSupervisor, load_config
from supervisor.core.messages import EvaluateOrder
from supervisor.core.orders import validate_order
from supervisor.journal.store import JOURNAL_NAME, JournalReader
from tests.helpers import signal
from tests.supervisor.api.conftest import ALICE, DESK, clients, operators

ROOT = Path(__file__).resolve().parents[3]


def order(**fields):
    base = {
        "account": "main_binance",
        "exchange": "binance",
        "strategy_id": "trend_v2",
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": 0.01,
        "price": 65_000.0,
        "leverage": 2.0,
    }
    return {**base, **fields}


def write(path: Path, *replacements: tuple[str, str]) -> None:
    text = (ROOT / "config.toml").read_text().replace('dir = "state"', f'dir = "{path.parent / "state"}"')
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    for kind, principals in (("operators", operators()), ("clients", clients())):
        for name, table in principals.items():
            text += f'\n[api.{kind}.{name}]\ntoken_sha256 = "{table["token_sha256"]}"\n'
    path.write_text(text)


@pytest.fixture
def cfg_path(tmp_path) -> Path:
    path = tmp_path / "riskgate.toml"
    write(path)
    return path


@pytest.fixture
def sup(cfg_path, clock):
    with RiskSupervisor(load_config(cfg_path), clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        s.report_ess_active(False)
        s.report_risk_signal(signal("INFO", clock.now()))
        for name in s.config.accounts.accounts:
            s.report_account_snapshot(AccountSnapshot(name, 100_000.0))
        yield s


def call(sup: RiskSupervisor, method: str, path: str, token: str | None = ALICE, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, sup.api_server.url + path, headers=headers, timeout=10.0, **kw)


def events(sup: RiskSupervisor, kind: str) -> list[dict]:
    sup.flush_journal()
    reader = JournalReader(sup.config.state.dir / JOURNAL_NAME)
    try:
        rows = [e for e in reader.events(limit=1000) if e["kind"] == kind]
    finally:
        reader.close()
    return [{**e, "detail": json.loads(e["detail"]) if isinstance(e["detail"], str) else e["detail"]} for e in rows]


def test_reload_without_a_valid_token_is_401_and_journaled(sup):
    assert call(sup, "POST", "/v1/reload", token=None).status_code == 401
    assert call(sup, "POST", "/v1/reload", token="not-a-token").status_code == 401
    assert call(sup, "POST", "/v1/reload", token=ALICE + "x").status_code == 401
    r = httpx.post(sup.api_server.url + "/v1/reload", headers={"Authorization": f"Basic {ALICE}"})
    assert r.status_code == 401
    refused = events(sup, "auth_failed")
    assert len(refused) == 4
    assert {e["detail"]["why"] for e in refused} == {"no bearer token", "unknown token"}
    assert all(e["detail"]["path"] == "/v1/reload" and ALICE not in str(e) for e in refused)


def test_a_broken_file_changes_nothing_and_answers_every_problem(sup, cfg_path):
    digest = sup.config.digest
    write(
        cfg_path,
        ("max_orders_per_s = 20", "max_orders_per_s = 0"),
        ("allowed_leverage = 3.0", "allowed_leverage = 0.5"),
    )
    r = call(sup, "POST", "/v1/reload")
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert any(p.startswith("gate.max_orders_per_s: must be >= 1") for p in problems)
    assert any(p.startswith("profiles.normal.allowed_leverage") for p in problems)
    assert sup.config.digest == digest
    assert sup.evaluate(order()).decision == "allow"
    cfg_path.write_text("this is [not toml")
    r = call(sup, "POST", "/v1/reload")
    assert r.status_code == 400 and "not valid TOML" in r.json()["problems"][0]
    assert sup.evaluate(order()).decision == "allow"
    assert len(events(sup, "config_reload_refused")) == 2


def test_a_restart_only_change_is_refused_whole(sup, cfg_path):
    write(
        cfg_path,
        ('url = "http://127.0.0.1:8001"', 'url = "http://127.0.0.1:9"'),
        ("allowed_leverage = 3.0", "allowed_leverage = 1.5"),
    )
    r = call(sup, "POST", "/v1/reload")
    assert r.status_code == 400
    assert any(p.startswith("risk_v3.url: changed; restart required") for p in r.json()["problems"])
    assert "restart required for these keys, nothing changed" in r.json()["detail"]
    assert sup.evaluate(order()).decision == "allow"  # the leverage change was not applied either


def test_a_tightened_limit_applies_to_the_next_order(sup, cfg_path):
    assert sup.evaluate(order()).decision == "allow"
    write(cfg_path, ("allowed_leverage = 3.0", "allowed_leverage = 1.5"))
    r = call(sup, "POST", "/v1/reload")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == ["profiles.normal.allowed_leverage"]
    assert r.json()["sha256"] == sup.config.digest
    out = call(sup, "POST", "/v1/evaluate", token=DESK, json=order()).json()
    assert out["reason_code"] == "LEVERAGE_EXCEEDS_LIMIT"
    (reloaded,) = events(sup, "config_reload")
    assert reloaded["detail"]["by"] == "alice" and reloaded["detail"]["changed"] == ["profiles.normal.allowed_leverage"]


def test_an_order_validated_before_a_reload_is_judged_by_the_new_config(sup, cfg_path):
    old = sup.config
    valid = validate_order(order(account="alt_bybit", exchange="bybit", leverage=1.0), old)
    assert not isinstance(valid, str)
    start = (ROOT / "config.toml").read_text().index("[accounts.alt_bybit]")
    section = (ROOT / "config.toml").read_text()[start:].split("\n\n")[0]
    write(cfg_path, (section, ""))  # the account is removed
    assert call(sup, "POST", "/v1/reload").status_code == 200
    # Told after the swap with the old validation (the race a reload can meet): validated again.
    result = sup.gate_ref.ask(EvaluateOrder(valid, config=old), timeout=5)
    assert (result.decision, result.reason_code) == ("block", "UNKNOWN_ACCOUNT")
    assert sup.evaluate(order(account="alt_bybit", exchange="bybit")).reason_code == "UNKNOWN_ACCOUNT"


def test_sighup_style_reload_from_python_refuses_like_the_api(sup, cfg_path):
    from supervisor.config import ConfigError

    write(cfg_path, ("[journal]\n", "[journal]\nbogus = 1\n"))
    with pytest.raises(ConfigError) as exc:
        sup.reload(by="SIGHUP")
    assert any("journal.bogus: unknown key" in p for p in exc.value.problems)


def test_the_connection_limit_takes_a_restart(sup, cfg_path):
    write(cfg_path, ("max_connections = 512", "max_connections = 64"))
    r = call(sup, "POST", "/v1/reload")
    assert r.status_code == 400
    assert any(p.startswith("api.max_connections: changed; restart required") for p in r.json()["problems"])
