"""The price reference's cost on the decision path (docs/prices.md), side by side in one run.

Pure evaluation of the same allowed orders (100 accounts, gate_latency's setup) with no
prices source and with one ([prices] configured, fresh marks for the symbols): the
collar's reference, the spike pause and the exposure price each read one entry.
Interleaved in rounds so that drift hits both alike.

Run: .venv/bin/python -m bench.prices [--n 20000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from bench.common import pct
from bench.gate_latency import bench_config, order, positions
from supervisor.clock import SystemClock
from supervisor.config import PricesConfig
from supervisor.core.evaluate import evaluate_order
from supervisor.core.gate_state import GateState
from supervisor.core.messages import AccountState, EssSourceStatus, EssState, PriceSnapshot, RiskSignal


def _state(with_prices: bool, prices_cfg: PricesConfig) -> GateState:
    clock = SystemClock()
    st = GateState()
    now = clock.monotonic()
    st.ess, st.ess_received = EssState.combine((EssSourceStatus("bench", False),)), now
    st.signal, st.signal_received = RiskSignal("INFO", clock.now()), now
    if with_prices:
        snap = PriceSnapshot(clock.now(), {"BTCUSDT": 65_000.0, "ETHUSDT": 3_500.0, "SOLUSDT": 150.0})
        st.prices.apply(snap, now, clock.now(), replace(prices_cfg, max_age_s=3600.0))
    for i in range(100):
        st.put_account(AccountState(f"acct{i}", 1e9, positions(), 1e9, 1e9), now)
    return st


def run(n: int = 20_000, rounds: int = 10) -> dict[str, list[int]]:
    base = bench_config(100)
    with_cfg = replace(base, prices=PricesConfig(url="http://127.0.0.1:9", max_age_s=3600.0))
    subjects = {
        "no prices source": (base, _state(False, with_cfg.prices)),
        "with a prices source": (with_cfg, _state(True, with_cfg.prices)),
    }
    clock = SystemClock()
    now, wall = clock.monotonic(), clock.now()
    orders = [order(i) for i in range(1000)]
    samples: dict[str, list[int]] = {name: [] for name in subjects}
    perf = time.perf_counter_ns
    for _ in range(rounds):
        for name, (cfg, st) in subjects.items():
            out = samples[name]
            for i in range(n // rounds):
                o = orders[i % 1000]
                t0 = perf()
                ev = evaluate_order(o, st, cfg, now, wall)
                out.append(perf() - t0)
            assert ev.result.reason_code.value == "ALL_CHECKS_PASSED", (name, ev.result)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    run(2_000)
    s = run(args.n)
    for name, v in s.items():
        print(f"{name:24} p50 {pct(v, 0.5):.2f} µs  p99 {pct(v, 0.99):.2f} µs")


if __name__ == "__main__":
    main()
