"""The shadow config (supervisor/shadow.py, supervisor/ops/shadow.py): a running riskgate decides
every order under a candidate too, in a process of its own, journals each disagreement, counts
it, starts again when the candidate changes, and can be promoted to the live config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import ConfigError, load_config, parse_config
from supervisor.journal.store import JOURNAL_NAME, JournalReader
from supervisor.ops.controls import ControlError
from supervisor.ops.shadow import ShadowRunner
from supervisor.sim.demo import toml_text
from tests.helpers import config_dict, order, signal

WAIT_S = 60.0  # real seconds a shadow process may take to start and catch up (waited on, not slept)


def tables(folder: Path, leverage: float = 3.0, **extra: dict[str, Any]) -> dict[str, Any]:
    data = config_dict(state={"dir": str(folder / "state")}, **extra)
    data["profiles"]["normal"]["allowed_leverage"] = leverage
    return data


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(toml_text(data), encoding="utf-8")
    return path


def fed(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))


def one_shadowed(sup: RiskSupervisor) -> ShadowRunner:
    """`sup` fed, one 3x order decided live, and its shadow caught up with it (it decided it too)."""
    fed(sup)
    sup.evaluate(order(order_id="a", leverage=3.0))
    sup.flush_journal()
    shadow = sup._system.shadow
    assert shadow.wait_until(lambda s: s.decided >= 1, WAIT_S), shadow.summary()
    return shadow


def events(sup: RiskSupervisor, kind: str) -> list[dict[str, Any]]:
    sup.flush_journal()
    reader = JournalReader(sup.config.state.dir / JOURNAL_NAME)
    try:
        return [e for e in reader.events(limit=10_000) if e["kind"] == kind]
    finally:
        reader.close()


def test_the_shadow_s_keys_are_checked():
    with pytest.raises(ConfigError, match=r"shadow\.config: needs journal\.enabled"):
        parse_config(config_dict(shadow={"config": "c.toml"}, journal={"enabled": False}))
    with pytest.raises(ConfigError, match=r"shadow\.poll_interval_s"):
        parse_config(config_dict(shadow={"config": "c.toml", "poll_interval_s": 0}))
    with pytest.raises(ConfigError, match=r"shadow\.config: must be a non-empty string"):
        parse_config(config_dict(shadow={"config": ""}))
    with pytest.raises(ConfigError, match=r"shadow\.colour"):
        parse_config(config_dict(shadow={"colour": "red"}))
    cfg = parse_config(config_dict(shadow={"config": "c.toml"}), base_dir=Path("/etc/riskgate"))
    assert cfg.shadow.config == Path("/etc/riskgate/c.toml")


def test_a_disagreement_is_journaled_and_counted_while_the_live_answer_stands(files):
    live, _ = files
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        fed(sup)
        plain = sup.evaluate(order(order_id="plain"))
        levered = sup.evaluate(order(order_id="levered", leverage=3.0))
        assert (plain.decision, levered.decision) == ("allow", "allow")  # the live config's answers
        sup.flush_journal()
        shadow = sup._system.shadow
        assert shadow.wait_until(lambda s: s.decided >= 2, WAIT_S), shadow.summary()
        summary = sup.shadow()
        assert summary["state"] == "running" and summary["decided"] == 2 and summary["disagreements"] == 1
        assert summary["transitions"] == [
            {"from": ["allow", "ALL_CHECKS_PASSED"], "to": ["block", "LEVERAGE_EXCEEDS_LIMIT"], "count": 1}
        ]
        assert summary["latest"][0]["order_id"] == "levered"
        [event] = events(sup, "shadow_disagreement")
        detail = json.loads(event["detail"])
        assert event["account"] == "main" and detail["order_id"] == "levered"
        assert detail["live"][:2] == ["allow", "ALL_CHECKS_PASSED"]
        assert detail["shadow"][:2] == ["block", "LEVERAGE_EXCEEDS_LIMIT"]
        text = sup.metrics.exposition().decode()
        codes = 'live_code="ALL_CHECKS_PASSED",shadow_code="LEVERAGE_EXCEEDS_LIMIT"'
        assert f"risk_gate_shadow_disagreements_total{{{codes}}} 1.0" in text
        assert "risk_gate_shadow_up 1.0" in text and "risk_gate_shadow_decided_total 2.0" in text


def test_a_changed_candidate_starts_the_shadow_again_without_saying_old_disagreements_twice(files, tmp_path):
    live, candidate = files
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        shadow = one_shadowed(sup)
        assert sup.shadow()["disagreements"] == 1
        write(candidate, tables(tmp_path, leverage=2.5))  # the candidate tightened less: 3x still too much
        sup.reload()
        sup.evaluate(order(order_id="b", leverage=3.0))
        sup.evaluate(order(order_id="c", leverage=2.5))
        sup.flush_journal()
        assert shadow.wait_until(lambda s: s.decided >= 3, WAIT_S), shadow.summary()
        assert sup.shadow()["disagreements"] == 2  # a (before the reload) and b: a not said again
        started = events(sup, "shadow_started")
        assert len(started) == 2


def test_a_candidate_that_does_not_load_fails_the_shadow_not_the_gate(files):
    live, candidate = files
    candidate.write_text("[gate]\nmax_orders_per_s = -1\n")
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        shadow = sup._system.shadow
        assert shadow.wait_until(lambda s: s.failures == 1, WAIT_S)
        assert sup.shadow()["state"] == "failed" and "gate.max_orders_per_s" in sup.shadow()["problem"]
        fed(sup)
        assert sup.evaluate(order()).decision == "allow"
        assert events(sup, "shadow_failed")
        with pytest.raises(ControlError, match="the shadow is not running"):
            sup.promote_shadow("alice", "a shadow that never decided")


def test_promote_makes_the_candidate_live_and_refuses_what_a_reload_could_not_apply(files, tmp_path):
    live, candidate = files
    before = live.read_text()
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        fed(sup)
        assert sup.evaluate(order(order_id="x", leverage=3.0)).decision == "allow"
        frozen = tables(tmp_path, leverage=2.0, journal={"flush_interval_s": 0.2})
        write(candidate, frozen)
        sup.reload()  # the shadow reads the new candidate (promote takes only what the shadow decided under)
        with pytest.raises(ControlError, match=r"restart-only keys \(journal\.flush_interval_s\)") as refused:
            sup.promote_shadow("alice", "tighter leverage")
        assert refused.value.status == 409 and live.read_text() == before  # nothing written
        write(candidate, tables(tmp_path, leverage=2.0))
        sup.reload()
        out = sup.promote_shadow("alice", "tighter leverage")
        assert Path(out["backup"]).read_text() == before
        assert live.read_text() == candidate.read_text()
        assert "profiles.normal.allowed_leverage" in out["changed"] and "shadow.config" in out["changed"]
        assert sup.config.profiles["normal"].allowed_leverage == 2.0
        assert sup.evaluate(order(order_id="y", leverage=3.0)).reason_code == "LEVERAGE_EXCEEDS_LIMIT"
        assert sup.shadow()["state"] == "off"  # the candidate had no [shadow] of its own
        [promoted] = events(sup, "shadow_promoted")
        assert json.loads(promoted["detail"])["by"] == "alice"
        with pytest.raises(ControlError, match="no shadow config"):
            sup.promote_shadow("alice", "again")


def test_the_http_api_shows_the_shadow_and_promotes_it_with_an_operator_token(files, tmp_path):
    live, _ = files
    import hashlib

    token = "op-token-0123456789"
    alice = {"token_sha256": hashlib.sha256(token.encode()).hexdigest()}
    data = tables(tmp_path, shadow={"config": "candidate.toml", "poll_interval_s": 0.05},
                  api={"enabled": False, "operators": {"alice": alice}})  # fmt: skip
    write(live, data)
    write(
        tmp_path / "candidate.toml",
        tables(tmp_path, leverage=2.0, api={"enabled": False, "operators": {"alice": alice}}),
    )
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        server = sup.serve_api(host="127.0.0.1", port=0)
        url = server.url
        shown = httpx.get(url + "/v1/shadow", timeout=10)
        assert shown.status_code == 200 and shown.json()["enabled"] is True
        assert httpx.post(url + "/v1/shadow/promote", json={"reason": "x"}, timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        bad = httpx.post(url + "/v1/shadow/promote", json={"why": "x"}, headers=auth, timeout=10)
        assert bad.status_code == 422 and "reason" in bad.json()["detail"]
        empty = httpx.post(url + "/v1/shadow/promote", json={"reason": "  "}, headers=auth, timeout=10)
        assert empty.status_code == 422
        cli = [sys.executable, "-m", "supervisor.cli", "shadow"]
        (tmp_path / "token").write_text(token)
        promote = [*cli, "promote", "--reason", "tighter", "--url", url, "--token-file", str(tmp_path / "token")]
        done = subprocess.run(promote, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0 and "it is the live config now" in done.stdout, done.stderr
        again = httpx.post(url + "/v1/shadow/promote", json={"reason": "tighter"}, headers=auth, timeout=10)
        assert again.status_code == 409


def test_riskgate_shadow_says_its_state_in_words():
    from supervisor.cli_replay import _said_shadow

    assert _said_shadow({"enabled": False}) == "no shadow config ([shadow] config is not set)"
    said = _said_shadow({
        "enabled": True, "candidate": "/etc/riskgate/candidate.toml", "state": "failed", "problem": "gone",
        "decided": 1234, "disagreements": 2,
        "transitions": [{"from": ["allow", "ALL_CHECKS_PASSED"], "to": ["block", "LEVERAGE_EXCEEDS_LIMIT"],
                         "count": 2}],
        "latest": [{"time": "t", "order_id": "o-1", "account": "main", "order": "buy 1 SOLUSDT @100",
                    "live": ["allow", "ALL_CHECKS_PASSED", 1.0], "shadow": ["block", "LEVERAGE_EXCEEDS_LIMIT", 0.0]}],
    })  # fmt: skip
    assert said.splitlines()[0] == "shadow /etc/riskgate/candidate.toml: failed (gone)"
    assert "1,234 orders decided again, 2 decided otherwise" in said
    assert "allow ALL_CHECKS_PASSED -> block LEVERAGE_EXCEEDS_LIMIT" in said.replace("  ", " ").replace("  ", " ")
    assert "o-1" in said
