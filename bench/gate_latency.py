"""Gate latency, side by side in one run (not part of the test suite).

1. Pure evaluation of one order (all checks, 100 configured accounts): p50/p99.
2. `RiskSupervisor.evaluate` (a pykka ask to GateActor) beside a bare pykka ask
   to an actor with a trivial handler, interleaved in rounds; their ratio.

Run: .venv/bin/python -m bench.gate_latency [--n 20000]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import statistics
import time

import pykka

from supervisor import AccountSnapshot, RiskSupervisor, parse_config
from supervisor.clock import SystemClock
from supervisor.evaluate import evaluate_order
from supervisor.messages import AccountState, EssSourceStatus, EssState, Position, RiskSignal
from supervisor.state import GateState
from tests.helpers import config_dict


def bench_config(n_accounts: int):
    data = config_dict(gate={"max_orders_per_s": 10**9, "evaluate_timeout_s": 5.0},
                       risk_v3={"max_age_s": 3600.0}, ess={"max_age_s": 3600.0}, accounts={"max_age_s": 3600.0})
    for i in range(n_accounts):
        data["accounts"][f"acct{i}"] = {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 1e12}
    data["exchanges"]["binance"]["max_notional_usd"] = 1e15
    return parse_config(data)


def order(i: int) -> dict:
    return {"account": f"acct{i % 100}", "exchange": "binance", "strategy_id": "trend_v2", "symbol": "BTCUSDT",
            "side": "buy", "quantity": 0.01, "price": 65_000.0, "leverage": 2.0}


def positions() -> tuple[Position, ...]:
    return (Position("BTCUSDT", "binance", 0.2, 65_000.0), Position("ETHUSDT", "binance", -1.0, 3_500.0))


def pct(samples: list[int], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0  # ns -> µs


def bench_pure(n: int) -> list[int]:
    cfg = bench_config(100)
    clock = SystemClock()
    st = GateState()
    now = clock.monotonic()
    st.ess, st.ess_received = EssState.combine((EssSourceStatus("bench", False),)), now
    st.signal, st.signal_received = RiskSignal("INFO", clock.now()), now
    for i in range(100):
        st.put_account(AccountState(f"acct{i}", 1e9, positions(), 1e9, 1e9), now)
    wall = clock.now()
    orders = [order(i) for i in range(1000)]
    samples = []
    perf = time.perf_counter_ns
    for i in range(n):
        o = orders[i % 1000]
        t0 = perf()
        ev = evaluate_order(o, st, cfg, now, wall)
        samples.append(perf() - t0)
    assert ev.result.decision == "allow", ev.result
    return samples


class Trivial(pykka.ThreadingActor):
    def on_receive(self, message):
        return message


def bench_ask_vs_facade(n: int, rounds: int = 10) -> tuple[list[int], list[int]]:
    cfg = bench_config(100)
    bare_ref = Trivial.start()
    facade_samples: list[int] = []
    bare_samples: list[int] = []
    perf = time.perf_counter_ns
    with RiskSupervisor(cfg) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(RiskSignal("INFO", sup.clock.now()))
        for i in range(100):
            sup.report_account_snapshot(AccountSnapshot(f"acct{i}", 1e9, positions()))
        orders = [order(i) for i in range(1000)]
        assert sup.evaluate(orders[0]).decision == "allow"
        per_round = n // rounds
        for _ in range(rounds):  # interleave so drift and noise hit both alike
            for i in range(per_round):
                t0 = perf()
                bare_ref.ask(orders[i % 1000], timeout=5)
                bare_samples.append(perf() - t0)
            for i in range(per_round):
                t0 = perf()
                sup.evaluate(orders[i % 1000])
                facade_samples.append(perf() - t0)
    bare_ref.stop()
    return bare_samples, facade_samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    gc.freeze()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, pykka {importlib.metadata.version('pykka')}")
    bench_pure(2_000)  # warm-up
    pure = bench_pure(args.n)
    print(f"pure evaluate_order (100 accounts): p50 {pct(pure, .5):.2f} µs  p99 {pct(pure, .99):.2f} µs  (target p50 <= 15 µs)")
    bare, facade = bench_ask_vs_facade(args.n)
    bp50, fp50 = pct(bare, .5), pct(facade, .5)
    print(f"bare pykka ask (trivial handler): p50 {bp50:.2f} µs  p99 {pct(bare, .99):.2f} µs  p99.9 {pct(bare, .999):.2f} µs")
    print(f"RiskSupervisor.evaluate:          p50 {fp50:.2f} µs  p99 {pct(facade, .99):.2f} µs  p99.9 {pct(facade, .999):.2f} µs")
    print(f"ratio facade/bare p50: {fp50 / bp50:.2f}x  (target <= 1.3x); mean ratio {statistics.fmean(facade) / statistics.fmean(bare):.2f}x")


if __name__ == "__main__":
    main()
