"""`riskgate run` and `riskgate demo` as real subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from supervisor.simulator import UpstreamSimulator

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, sim_url: str) -> None:
    text = (ROOT / "config.toml").read_text()
    text = text.replace('url = "http://127.0.0.1:8001"', f'url = "{sim_url}"')
    text = text.replace("interval_s = 30.0", "interval_s = 0.2")  # [health]
    text = text.replace('kill_switch_file = "state/KILL_SWITCH"', f'kill_switch_file = "{path.parent / "KILL_SWITCH"}"')
    text = text.replace('dir = "state"', f'dir = "{path.parent / "state"}"')
    path.write_text(text)


def test_run_logs_json_health_and_exits_0_on_sigterm(tmp_path):
    with UpstreamSimulator() as sim:
        sim.set_risk("info")
        cfg = tmp_path / "config.toml"
        write_config(cfg, sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        enough = threading.Event()

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if sum('"actor_health"' in x for x in lines) >= 8:  # two health rounds
                    enough.set()
            enough.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert enough.wait(20), "no health events within 20 s"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            proc.kill()
        reader.join(5)
    events = [json.loads(line) for line in lines]  # every stdout line is JSON
    health = [e for e in events if e["event"] == "actor_health"]
    assert {e["actor"] for e in health} == {"gate", "account_tracker", "risk_v3_poller", "ess_watcher"}
    for e in health:
        assert {"actor", "alive", "restarts", "last_error", "state_age_s", "level", "timestamp"} <= set(e)
    assert any(e["event"] == "gate_stats" and "decisions" in e for e in events)
    assert events[-1]["event"] == "riskgate_stopped"


def test_run_with_a_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config.toml").read_text().replace("max_orders_per_s = 20", "max_orders_per_s = 0"))
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "gate.max_orders_per_s: must be >= 1" in proc.stderr


@pytest.mark.parametrize("entry", [["-m", "supervisor.cli", "demo"]])
def test_demo_exits_0_and_shows_every_decision_kind(entry):
    proc = subprocess.run([sys.executable, *entry], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line[:2].isdigit() and line[2] == ":"]
    decisions = {word for row in rows for word in row if word in ("allow", "block", "scale_down")}
    assert decisions == {"allow", "block", "scale_down"}
    for code in (
        "RISK_WARNING_SCALE",
        "SINGLE_TRADE_RISK",
        "ACCOUNT_EXPOSURE_LIMIT",
        "STRATEGY_NOT_ALLOWED",
        "GLOBAL_RISK_CRITICAL",
        "ESS_HALT_ACTIVE",
        "RISK_STATE_STALE",
    ):
        assert code in proc.stdout
    assert "decisions: allow" in proc.stdout
