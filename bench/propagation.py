"""ESS propagation: from a halt at its source to the first blocked decision.

Sources: the kill-switch file (created) and the ESS HTTP endpoint (flipped at
the simulator, its own process). The supervisor runs on the system clock with
the shipped poll intervals; a caller evaluates every millisecond, as a busy
execution service would, and the time to its first ESS_HALT_ACTIVE is taken.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from bench.common import control, simulator_process
from supervisor import AccountSnapshot, RiskSupervisor, parse_config
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import config_dict

ORDER = {
    "account": "main",
    "exchange": "binance",
    "strategy_id": "trend_v2",
    "symbol": "SOLUSDT",
    "side": "buy",
    "quantity": 0.1,
    "price": 100.0,
    "stop_price": 99.0,
}


def _until(sup: RiskSupervisor, want_halt: bool, limit_s: float = 10.0) -> float:
    """Evaluate every ~1 ms until the decision is (or is no longer) an ESS halt; seconds taken."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        halted = sup.evaluate(ORDER).reason_code is RC.ESS_HALT_ACTIVE
        if halted == want_halt:
            return time.perf_counter() - t0
        time.sleep(0.001)
    raise TimeoutError("no change within the limit")


def run(trials: int = 6) -> dict[str, object]:
    with simulator_process("--risk", "info") as url, tempfile.TemporaryDirectory() as tmp:
        kill = Path(tmp) / "KILL"
        data = config_dict(
            risk_v3={"url": url},
            ess={"url": url, "kill_switch_file": str(kill)},  # poll_interval_s 0.5 as shipped
            gate={"max_orders_per_s": 10**9},
            state={"dir": str(Path(tmp) / "state")},
        )
        cfg = parse_config(data)
        out: dict[str, object] = {"ess_poll_interval_s": cfg.ess.poll_interval_s}
        with RiskSupervisor(cfg) as sup:
            sup.report_account_snapshot(AccountSnapshot("main", 1e9))
            sup.poll_now()
            _until(sup, want_halt=False)
            file_ms, http_ms = [], []
            phase = random.Random(7)
            for _ in range(trials):
                time.sleep(phase.uniform(0, cfg.ess.poll_interval_s))  # halt at a random point of the poll cycle
                kill.write_text("bench\n")
                file_ms.append(_until(sup, want_halt=True) * 1000)
                kill.unlink()
                _until(sup, want_halt=False)
                time.sleep(phase.uniform(0, cfg.ess.poll_interval_s))
                control(url, "/control/ess", {"active": True, "reason": "bench"})
                http_ms.append(_until(sup, want_halt=True) * 1000)
                control(url, "/control/ess", {"active": False})
                _until(sup, want_halt=False)
        out["kill_switch_ms"] = file_ms
        out["http_ms"] = http_ms
    return out


if __name__ == "__main__":
    r = run()
    for key in ("kill_switch_ms", "http_ms"):
        v = r[key]
        print(
            f"{key}: mean {sum(v) / len(v):.1f} ms, max {max(v):.1f} ms over {len(v)} trials (poll interval "
            f"{r['ess_poll_interval_s'] * 1000:.0f} ms, target max <= interval + 5 ms)"
        )
