"""Scale: evaluate p50 and process RSS with 10 and with 10,000 configured accounts.

Each size runs in its own process (`python -m bench.scale N`), so RSS is that
size's alone. Every account has a snapshot with two positions; orders are
spread over all accounts. The process is pinned to one core so both sizes are
measured in the same hand-off regime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import pct, rss_mb


def worker(accounts: int, n: int = 20_000) -> dict[str, float]:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from bench.gate_latency import bench_config, positions
    from supervisor import AccountSnapshot, RiskSupervisor
    from supervisor.core.messages import RiskSignal

    t0 = time.perf_counter()
    with RiskSupervisor(bench_config(accounts), poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(RiskSignal("INFO", sup.clock.now()))
        for i in range(accounts):
            sup.report_account_snapshot(AccountSnapshot(f"acct{i}", 1e9, positions()))
        load_s = time.perf_counter() - t0
        base = {
            "exchange": "binance",
            "strategy_id": "trend_v2",
            "symbol": "BTCUSDT",
            "side": "buy",
            "quantity": 0.01,
            "price": 65_000.0,
        }
        orders = [{**base, "account": f"acct{(i * 7919) % accounts}"} for i in range(1000)]
        assert sup.evaluate(orders[0]).decision == "allow"
        samples = []
        perf = time.perf_counter_ns
        for i in range(n):
            t = perf()
            sup.evaluate(orders[i % 1000])
            samples.append(perf() - t)
    return {
        "accounts": accounts,
        "p50_us": pct(samples, 0.5),
        "p99_us": pct(samples, 0.99),
        "rss_mb": rss_mb(),
        "load_s": load_s,
    }


def run(sizes: tuple[int, ...] = (10, 10_000)) -> list[dict[str, float]]:
    root = Path(__file__).resolve().parents[1]
    out = []
    for size in sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.scale", str(size)],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=600,
            check=True,
        )
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from supervisor.logs import configure_logging

        configure_logging("json", level=40, stream=sys.stderr)
        print(json.dumps(worker(int(sys.argv[1]))))
    else:
        rows = run()
        for r in rows:
            print(
                f"{r['accounts']:>6} accounts: p50 {r['p50_us']:.1f} µs  p99 {r['p99_us']:.1f} µs"
                f"  RSS {r['rss_mb']:.1f} MB  "
                f"(loaded in {r['load_s']:.1f} s)"
            )
        print(f"ratio p50 10,000 / 10: {rows[1]['p50_us'] / rows[0]['p50_us']:.2f}x (target <= 1.2x, RSS < 150 MB)")
