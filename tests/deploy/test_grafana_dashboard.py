"""deploy/grafana/riskgate.json: every query names only metrics riskgate exports, and parses as PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import RiskSupervisor
from tests.helpers import make_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "riskgate.json"
PROMTOOL = shutil.which("promtool")
# Exported only with several instances (store.backend = "postgresql"): declared in the collector.
SHARED_ONLY = {"risk_gate_instances", "risk_gate_lease_usd", "risk_gate_instance_heartbeat_age_seconds"}


def queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    found += [a["expr"] for a in doc["annotations"]["list"]]
    return found


def test_the_dashboard_is_well_formed():
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and all(p["targets"] and p["gridPos"]["w"] > 0 for p in doc["panels"])
    assert {a["name"] for a in doc["annotations"]["list"]} >= {"Halts"}  # halts as annotations
    titles = " ".join(p["title"] for p in doc["panels"]).lower()
    for wanted in ("decisions", "latency", "source ages", "lockout", "budgets"):
        assert wanted in titles


def test_reduce_only_shows_on_the_status_panel_and_as_annotations():
    doc = json.loads(DASHBOARD.read_text())
    status = next(p for p in doc["panels"] if p["title"] == "Ready / halted / reduce-only")
    assert any("risk_gate_reduce_only" in t["expr"] for t in status["targets"])
    marks = {a["name"]: a["expr"] for a in doc["annotations"]["list"]}
    assert "risk_gate_reduce_only" in marks["Reduce-only"] and "risk_gate_ess_active" in marks["Halts"]


def test_every_metric_a_query_names_is_exported(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        text = sup.metrics.exposition().decode()
    families = list(text_string_to_metric_families(text))
    exported = {s.name for f in families for s in f.samples} | {f.name for f in families}
    exported |= {f.name + "_total" for f in families if f.type == "counter"}
    collector = (ROOT / "supervisor" / "ops" / "metrics.py").read_text()
    assert all(f'"{name}"' in collector for name in SHARED_ONLY)
    exported |= SHARED_ONLY
    named = {m for q in queries() for m in re.findall(r"\b((?:risk_gate|process)_[a-z_]+)", q)}
    assert named and named <= exported, named - exported


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's prometheus package has it)")
def test_every_query_parses_as_promql(tmp_path):
    rules = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"q{i}", "expr": q} for i, q in enumerate(queries())]}]
    }
    (tmp_path / "queries.yml").write_text(json.dumps(rules))  # JSON is YAML
    out = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "queries.yml")], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
