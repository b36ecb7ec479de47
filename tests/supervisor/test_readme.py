"""The README's Python snippet, run as written against the upstream simulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from supervisor.sim.simulator import UpstreamSimulator
from tests.supervisor.test_cli_run import write_config

ROOT = Path(__file__).resolve().parents[2]


def snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the gate") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_snippet_allows_its_order_as_written(tmp_path):
    code = snippet()
    assert "wait_ready" in code
    with UpstreamSimulator() as sim:
        sim.set_risk("info")
        sim.set_account("main_binance", 100_000.0)
        sim.set_account("alt_bybit", 50_000.0)
        write_config(tmp_path / "config.toml", sim.url)
        check = code + '\nassert result.decision == "allow", result\nprint(result.reason_code)\n'
        out = subprocess.run(
            [sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ALL_CHECKS_PASSED")
