"""deploy/riskgate.service: checked by systemd itself where systemd-analyze exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "riskgate.service"


def test_the_unit_runs_riskgate_run_and_reloads_with_sighup():
    text = UNIT.read_text()
    assert "ExecStart=/opt/riskgate/bin/riskgate run --config /etc/riskgate/config.toml" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    # verify wants the ExecStart binary to exist: point it at this checkout's riskgate.
    riskgate = Path(sys.executable).parent / "riskgate"
    unit = tmp_path / "riskgate.service"
    unit.write_text(UNIT.read_text().replace("/opt/riskgate/bin/riskgate", str(riskgate)))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert (out.returncode, out.stderr.strip()) == (0, "")


def test_the_unit_is_type_notify_with_a_watchdog():
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "NotifyAccess=main" in text


def test_riskgate_run_speaks_systemds_notify_protocol(tmp_path):
    """A real `riskgate run` under a fake systemd: READY=1 after the start, WATCHDOG=1 every half
    period while the gate answers, a STATUS line saying what is missing, STOPPING=1 at SIGTERM."""
    import os
    import signal
    import socket

    from supervisor.cli import main

    config = tmp_path / "config.toml"
    assert main(["init-config", str(config)]) == 0
    text = config.read_text().replace('dir = "state"', f'dir = "{tmp_path / "state"}"', 1)
    config.write_text(text.replace("port = 8010", "port = 0", 1))
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(30.0)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "run", "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    said: list[str] = []
    try:
        while not (any("READY=1" in s for s in said) and sum("WATCHDOG=1" in s for s in said) >= 2):
            said.append(listener.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in s for s in said):
            said.append(listener.recv(4096).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    ready = next(s for s in said if "READY=1" in s)
    assert f"MAINPID={proc.pid}" in ready
    statuses = [line for s in said for line in s.splitlines() if line.startswith("STATUS=")]
    assert any("NOT READY" in s and "risk_v3" in s for s in statuses), statuses  # nothing serves Risk v3 here
