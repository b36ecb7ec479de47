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
