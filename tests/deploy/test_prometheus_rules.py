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
    with RiskSupervisor(make_config(prices={"url": "http://127.0.0.1:9"}), clock=clock, poll_upstreams=False) as sup:
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
    assert out.returncode == 0 and "SUCCESS: 15 rules found" in out.stdout, out.stdout + out.stderr


_HEAD = """rule_files: [alerts.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:"""


def _promtool_test(folder: Path, cases: str) -> None:
    """`promtool test rules` against the shipped rules: `cases` are the input series and the
    alert tests of one 15 s test group."""
    (folder / "alerts.yml").write_text(RULES.read_text())
    (folder / "tests.yml").write_text(_HEAD + cases)
    out = subprocess.run(
        [PROMTOOL or "promtool", "test", "rules", "tests.yml"], capture_output=True, text=True, timeout=60,
        cwd=folder, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_the_rules_fire_as_meant(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_ready'
        values: '1 1 0 0 0 0'
      - series: 'risk_gate_decisions_total{decision="block",reason_code="ESS_HALT_ACTIVE",account="main"}'
        values: '0+40x8 320x12'
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
      - eval_time: 4m
        alertname: RiskGateBlocksPerAccount
        exp_alerts: []  # no block for a minute
      - eval_time: 15s
        alertname: RiskGateHalted
        exp_alerts: []
      - eval_time: 60s
        alertname: RiskGateHalted
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "riskgate is halted (ESS, the kill switch or an operator halt)"
              description: "GET /v1/state shows which source halts and why; `riskgate status` from a shell."
""",
    )


@needs_promtool
def test_a_dead_or_missing_riskgate_and_a_stale_source_alert_saying_what_and_how_old(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'up{job="riskgate", instance="h1:8010"}'
        values: '1 1 0 0 0 0 0'
      - series: 'risk_gate_build_info{job="riskgate", instance="h1:8010", version="1", store="sqlite"}'
        values: '1 1'
      - series: 'risk_gate_source_up{job="riskgate", instance="h1:8010", source="risk_v3"}'
        values: '1 0 0 0 0 0 0'
      - series: 'risk_gate_source_age_seconds{job="riskgate", instance="h1:8010", source="risk_v3"}'
        values: '1 20 35 50 65 80 95'
      - series: 'risk_gate_source_up{job="riskgate", instance="h1:8010", source="account:main"}'
        values: '0 0 0 0 0 0 0'
      - series: 'risk_gate_account_lockout{job="riskgate", instance="h1:8010", account="main", code="LOSS_COOLDOWN"}'
        values: '1 1 1 0'
    alert_rule_test:
      - eval_time: 75s
        alertname: RiskGateDown
        exp_alerts:
          - exp_labels: {severity: critical, job: riskgate, instance: "h1:8010"}
            exp_annotations:
              summary: "riskgate h1:8010 does not answer scrapes: it is down or hung"
              description: "Orders that ask it block or time out. Check the process: systemctl status riskgate."
      - eval_time: 15s
        alertname: RiskGateDown
        exp_alerts: []
      - eval_time: 3m
        alertname: RiskGateAbsent
        exp_alerts: []  # within Prometheus' 5-minute lookback the last sample still counts
      - eval_time: 7m
        alertname: RiskGateAbsent
        exp_alerts:
          - exp_labels: {severity: critical, job: riskgate}
            exp_annotations:
              summary: "no riskgate is scraped: none runs, or Prometheus cannot see it"
              description: "No series of job riskgate for a minute: an execution service that asks it gets no answer."
      - eval_time: 15s
        alertname: RiskGateSourceStale
        exp_alerts: []  # not yet 30 s
      - eval_time: 60s
        alertname: RiskGateSourceStale
        exp_alerts:
          - exp_labels: {severity: critical, job: riskgate, instance: "h1:8010", source: risk_v3}
            exp_annotations:
              summary: "riskgate source risk_v3 is stale: its last state is 1m 5s old"
              description: "Orders needing it block as stale (RISK_, ESS_, ACCOUNT_STATE_STALE, PRICE_REFERENCE_STALE)."
      - eval_time: 15s
        alertname: RiskGateSourceNeverSeen
        exp_alerts: []  # not yet 30 s
      - eval_time: 60s
        alertname: RiskGateSourceNeverSeen
        exp_alerts:
          - exp_labels: {severity: critical, job: riskgate, instance: "h1:8010", source: "account:main"}
            exp_annotations:
              summary: "riskgate source account:main has sent no state since riskgate started"
              description: "Orders that need it block until it answers."
      - eval_time: 15s
        alertname: RiskGateAccountLocked
        exp_alerts:
          - exp_labels: {severity: warning, job: riskgate, instance: "h1:8010", account: main, code: LOSS_COOLDOWN}
            exp_annotations:
              summary: "account main is locked (LOSS_COOLDOWN): new risk blocks"
              description: "`riskgate lockouts list` says why and until when; reducing orders still pass."
      - eval_time: 45s
        alertname: RiskGateAccountLocked
        exp_alerts: []  # lifted
""",
    )


@needs_promtool
def test_a_symbol_without_a_fresh_price_or_paused_after_a_spike_alerts_by_name(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_price_fresh{symbol="SOLUSDT"}'
        values: '1 0 0 0 0'
      - series: 'risk_gate_price_fresh{symbol="BTCUSDT"}'
        values: '1 1 1 1 1'
      - series: 'risk_gate_price_paused{symbol="ETHUSDT"}'
        values: '0 1 1 0'
    alert_rule_test:
      - eval_time: 15s
        alertname: RiskGatePriceStale
        exp_alerts: []  # not yet 30 s
      - eval_time: 60s
        alertname: RiskGatePriceStale
        exp_alerts:
          - exp_labels: {severity: warning, symbol: SOLUSDT}
            exp_annotations:
              summary: "no fresh price for SOLUSDT: its opening orders block (PRICE_REFERENCE_STALE)"
              description: "The prices source stopped pricing it, or priced it unusably. GET /v1/state, prices."
      - eval_time: 15s
        alertname: RiskGatePriceSpikePause
        exp_alerts:
          - exp_labels: {severity: warning, symbol: ETHUSDT}
            exp_annotations:
              summary: "ETHUSDT is paused after a price spike: its opening orders block (PRICE_SPIKE_PAUSE)"
              description: "GET /v1/state, prices, says the move and until when; reducing orders still pass."
      - eval_time: 45s
        alertname: RiskGatePriceSpikePause
        exp_alerts: []
""",
    )


@needs_promtool
def test_blocks_alert_per_reason_code_summed_over_accounts_above_60_a_minute(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_decisions_total{decision="block",reason_code="ESS_HALT_ACTIVE",account="main"}'
        values: '0+10x8 80x16'
      - series: 'risk_gate_decisions_total{decision="block",reason_code="ESS_HALT_ACTIVE",account="alt"}'
        values: '0+10x8 80x16'
      - series: 'risk_gate_decisions_total{decision="block",reason_code="LEVERAGE_EXCEEDS_LIMIT",account="main"}'
        values: '0x12 0+15x8'
    alert_rule_test:
      - eval_time: 90s
        alertname: RiskGateBlocksPerReason
        exp_alerts:  # 40 a minute on each account: 80 for the code
          - exp_labels: {severity: warning, reason_code: ESS_HALT_ACTIVE}
            exp_annotations:
              summary: "ESS_HALT_ACTIVE: more than 60 blocked orders in a minute"
      - eval_time: 315s
        alertname: RiskGateBlocksPerReason
        exp_alerts: []  # the burst over; LEVERAGE_EXCEEDS_LIMIT at exactly 60 a minute
""",
    )


@needs_promtool
def test_a_loss_limit_block_alerts_naming_account_and_code_and_ends_five_minutes_after_the_last(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_decisions_total{decision="block",reason_code="DAILY_LOSS_LIMIT",account="main"}'
        values: '0 0 1x32'
      - series: 'risk_gate_decisions_total{decision="block",reason_code="LEVERAGE_EXCEEDS_LIMIT",account="alt"}'
        values: '0+5x34'
    alert_rule_test:
      - eval_time: 15s
        alertname: RiskGateLossLimit
        exp_alerts: []  # blocks, but none for a loss limit
      - eval_time: 45s
        alertname: RiskGateLossLimit
        exp_alerts:
          - exp_labels: {severity: critical, account: main, reason_code: DAILY_LOSS_LIMIT}
            exp_annotations:
              summary: "account main reached DAILY_LOSS_LIMIT"
      - eval_time: 7m
        alertname: RiskGateLossLimit
        exp_alerts: []
""",
    )


@needs_promtool
def test_an_actor_restarting_more_than_3_times_in_10_minutes_alerts_by_name(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_actor_restarts_total{actor="gate"}'
        values: '0 1 2 3 4 4x50'
      - series: 'risk_gate_actor_restarts_total{actor="journal"}'
        values: '0 1 2 3 3x50'
    alert_rule_test:
      - eval_time: 60s
        alertname: RiskGateActorRestarting
        exp_alerts:  # the journal's 3 are not more than 3
          - exp_labels: {severity: warning, actor: gate}
            exp_annotations:
              summary: "riskgate actor gate restarted more than 3 times in 10 minutes"
      - eval_time: 12m
        alertname: RiskGateActorRestarting
        exp_alerts: []  # none for 10 minutes
""",
    )


@needs_promtool
def test_a_journal_that_blocks_or_dropped_a_record_in_5_minutes_alerts(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_journal_blocking{instance="h1:8010"}'
        values: '0 0 1 1 0x30'
      - series: 'risk_gate_journal_dropped_total{instance="h1:8010"}'
        values: '0x34'
      - series: 'risk_gate_journal_blocking{instance="h2:8010"}'
        values: '0x34'
      - series: 'risk_gate_journal_dropped_total{instance="h2:8010"}'
        values: '0 0 0 2 2x30'
    alert_rule_test:
      - eval_time: 15s
        alertname: RiskGateJournalFailing
        exp_alerts: []
      - eval_time: 30s
        alertname: RiskGateJournalFailing
        exp_alerts:  # h1 blocks
          - exp_labels: {severity: critical, instance: "h1:8010"}
            exp_annotations:
              summary: "riskgate's decision journal cannot keep every record"
              description: "With journal.on_failure = block, new orders block as JOURNAL_UNAVAILABLE."
      - eval_time: 75s
        alertname: RiskGateJournalFailing
        exp_alerts:  # h1 writes again; h2 dropped 2 records
          - exp_labels: {severity: critical, instance: "h2:8010"}
            exp_annotations:
              summary: "riskgate's decision journal cannot keep every record"
              description: "With journal.on_failure = block, new orders block as JOURNAL_UNAVAILABLE."
      - eval_time: 7m
        alertname: RiskGateJournalFailing
        exp_alerts: []  # nothing dropped for 5 minutes
""",
    )


@needs_promtool
def test_reduce_only_alerts_while_it_holds_and_is_no_halt(tmp_path):
    _promtool_test(
        tmp_path,
        """
      - series: 'risk_gate_reduce_only'
        values: '0 1 1 0'
      - series: 'risk_gate_ess_active'
        values: '0 0 0 0'
    alert_rule_test:
      - eval_time: 0s
        alertname: RiskGateReduceOnly
        exp_alerts: []
      - eval_time: 15s
        alertname: RiskGateReduceOnly
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations:
              summary: "riskgate is reduce-only: orders that grow a position block (REDUCE_ONLY_MODE)"
              description: "An operator's halt: `riskgate status` says whose and why, `riskgate resume` lifts it."
      - eval_time: 15s
        alertname: RiskGateHalted
        exp_alerts: []  # orders that reduce still pass
      - eval_time: 45s
        alertname: RiskGateReduceOnly
        exp_alerts: []  # resumed
""",
    )


_CASE = re.compile(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?")


def test_every_rule_has_a_firing_and_a_not_firing_promtool_case():
    rules = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    cases = {(name, not empty) for name, empty in _CASE.findall(Path(__file__).read_text())}
    missing = sorted(f"{rule} {'fires' if fires else 'does not fire'}" for rule in rules for fires in (True, False)
                     if (rule, fires) not in cases)  # fmt: skip
    assert len(rules) == 15 and not missing, missing
