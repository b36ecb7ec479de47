"""deploy/prometheus/alerts.yml: valid for promtool, firing as meant, and naming only metrics riskgate exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import RiskSupervisor
from tests.helpers import make_config

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian's prometheus package has it; .ci/run installs it)"
)


def test_every_metric_the_rules_name_is_exported(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        text = sup.metrics.exposition().decode()
    families = list(text_string_to_metric_families(text))
    exported = {s.name for f in families for s in f.samples}
    exported |= {f.name + ("_total" if f.type == "counter" else "") for f in families}  # even before a sample
    named = set(re.findall(r"risk_gate_[a-z_]+", RULES.read_text()))
    assert named and named <= exported, named - exported


@needs_promtool
def test_promtool_checks_the_rules():
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and "SUCCESS: 8 rules found" in out.stdout, out.stdout + out.stderr


@needs_promtool
def test_the_rules_fire_as_meant(tmp_path):
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    (tmp_path / "tests.yml").write_text(
        """
rule_files: [alerts.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'risk_gate_ready'
        values: '1 1 0 0 0 0'
      - series: 'risk_gate_decisions_total{decision="block",reason_code="ESS_HALT_ACTIVE",account="main"}'
        values: '0+40x8'
      - series: 'risk_gate_ess_active'
        values: '0 0 0 1 1 1'
    alert_rule_test:
      - eval_time: 75s
        alertname: RiskGateNotReady
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "riskgate is failing closed: a source is stale or missing, or the gate is down"
              description: "Every order blocks until GET /readyz answers 200; GET /v1/state names what is missing."
      - eval_time: 15s
        alertname: RiskGateNotReady
        exp_alerts: []
      - eval_time: 90s
        alertname: RiskGateBlocksPerAccount
        exp_alerts:
          - exp_labels: {severity: warning, account: main}
            exp_annotations:
              summary: "account main: more than 30 blocked orders in a minute"
      - eval_time: 60s
        alertname: RiskGateHalted
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "riskgate is halted (ESS, the kill switch or an operator halt)"
              description: "GET /v1/state shows which source halts and why; `riskgate status` from a shell."
"""
    )
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
