"""Gate latency, side by side in one run (not part of the test suite).

1. Pure evaluation of one order (all checks, 100 configured accounts): p50/p99.
2. `RiskSupervisor.evaluate` (decided on the caller's thread, holding the gate's
   lock: supervisor/gate.py) beside a bare pykka ask to an actor with a trivial
   handler, and beside the same bare ask on a C SimpleQueue inbox, interleaved in
   rounds; once with threads free to move between cores, once all pinned to one core.

Run: .venv/bin/python -m bench.gate_latency [--n 20000]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import queue
import tempfile
import time

import pykka

from bench.common import pct
from supervisor import AccountSnapshot, RiskSupervisor, parse_config
from supervisor.clock import SystemClock
from supervisor.core.evaluate import evaluate_order
from supervisor.core.gate_state import GateState
from supervisor.core.messages import AccountState, EssSourceStatus, EssState, Position, RiskSignal
from tests.helpers import config_dict

_STATE_DIR = tempfile.mkdtemp(prefix="riskgate-bench-")  # not the working tree's ./state


def bench_config(n_accounts: int):
    """Limits out of the way so every bench order is allowed; n accounts on binance."""
    data = config_dict(
        gate={"max_orders_per_s": 10**9, "evaluate_timeout_s": 5.0, "max_repeats": 10**9},
        risk_v3={"max_age_s": 3600.0},
        ess={"max_age_s": 3600.0},
        accounts={"max_age_s": 3600.0},
        state={"dir": _STATE_DIR},
    )
    for i in range(n_accounts):
        data["accounts"][f"acct{i}"] = {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 1e12}
    data["exchanges"]["binance"]["max_notional_usd"] = 1e15
    return parse_config(data)


def order(i: int) -> dict:
    return {
        "account": f"acct{i % 100}",
        "exchange": "binance",
        "strategy_id": "trend_v2",
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": 0.01,
        "price": 65_000.0,
        "leverage": 2.0,
    }


def positions() -> tuple[Position, ...]:
    return (Position("BTCUSDT", "binance", 0.2, 65_000.0), Position("ETHUSDT", "binance", -1.0, 3_500.0))


def bench_pure(n: int, blocked: bool = False) -> list[int]:
    """Pure evaluation of an allowed order, or (`blocked`) of one over the leverage cap."""
    cfg = bench_config(100)
    clock = SystemClock()
    st = GateState()
    now = clock.monotonic()
    st.ess, st.ess_received = EssState.combine((EssSourceStatus("bench", False),)), now
    st.signal, st.signal_received = RiskSignal("INFO", clock.now()), now
    for i in range(100):
        st.put_account(AccountState(f"acct{i}", 1e9, positions(), 1e9, 1e9), now)
    wall = clock.now()
    orders = [dict(order(i), leverage=4.0) if blocked else order(i) for i in range(1000)]
    samples = []
    perf = time.perf_counter_ns
    for i in range(n):
        o = orders[i % 1000]
        t0 = perf()
        ev = evaluate_order(o, st, cfg, now, wall)
        samples.append(perf() - t0)
    want = "LEVERAGE_EXCEEDS_LIMIT" if blocked else "ALL_CHECKS_PASSED"
    assert ev.result.reason_code.value == want, ev.result
    return samples


class Trivial(pykka.ThreadingActor):
    """The reference: a pykka actor whose handler returns its message."""

    def on_receive(self, message):
        return message


class TrivialSimpleInbox(Trivial):
    """The same, on a C SimpleQueue inbox: the messaging floor of an actor hand-off
    with the cheapest queue, to separate inbox cost from evaluation cost."""

    @staticmethod
    def _create_actor_inbox():
        return queue.SimpleQueue()


def fed_supervisor(cfg) -> RiskSupervisor:
    sup = RiskSupervisor(cfg, poll_upstreams=False).start()
    sup.report_ess_active(False)
    sup.report_risk_signal(RiskSignal("INFO", sup.clock.now()))
    for i in range(100):
        sup.report_account_snapshot(AccountSnapshot(f"acct{i}", 1e9, positions()))
    return sup


def bench_messaging(n: int, rounds: int = 10, caller: set[int] | None = None) -> dict[str, list[int]]:
    """Interleaved rounds so that drift and scheduler moods hit every subject alike.
    Actors inherit the calling thread's affinity; `caller` then moves the caller."""
    cfg = bench_config(100)
    bare, simple = Trivial.start(), TrivialSimpleInbox.start()
    sup = fed_supervisor(cfg)
    if caller is not None:
        os.sched_setaffinity(0, caller)
    orders = [order(i) for i in range(1000)]
    assert sup.evaluate(orders[0]).decision == "allow"
    subjects = {
        "bare pykka ask (trivial handler)": lambda o: bare.ask(o, timeout=5),
        "bare ask, SimpleQueue inbox": lambda o: simple.ask(o, timeout=5),
        "RiskSupervisor.evaluate": sup.evaluate,
    }
    samples: dict[str, list[int]] = {name: [] for name in subjects}
    perf = time.perf_counter_ns
    per_round = n // rounds
    try:
        for _ in range(rounds):
            for name, call in subjects.items():
                out = samples[name]
                for i in range(per_round):
                    o = orders[i % 1000]
                    t0 = perf()
                    call(o)
                    out.append(perf() - t0)
    finally:
        sup.stop()
        bare.stop()
        simple.stop()
    return samples


def report_messaging(title: str, samples: dict[str, list[int]]) -> None:
    print(f"\n{title}")
    for name, s in samples.items():
        print(f"  {name:34s} p50 {pct(s, 0.5):7.2f} µs  p99 {pct(s, 0.99):7.2f} µs  p99.9 {pct(s, 0.999):7.2f} µs")
    names = list(samples)
    bare, facade = pct(samples[names[0]], 0.5), pct(samples[names[2]], 0.5)
    print(f"  ratio evaluate / bare pykka ask, p50: {facade / bare:.2f}x (target <= 1.3x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    gc.freeze()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, "
        f"pykka {importlib.metadata.version('pykka')}"
    )
    bench_pure(2_000)  # warm-up
    pure = bench_pure(args.n)
    print(
        f"pure evaluate_order (100 accounts): p50 {pct(pure, 0.5):.2f} µs  p99 {pct(pure, 0.99):.2f} µs"
        "  (target p50 <= 15 µs)"
    )
    for key, samples in pinned_regimes(args.n):
        report_messaging(f"{REGIMES[key]}:", samples)


# Where the threads run decides the cost of a hand-off: on this VM a wake-up
# across cores costs tens of µs, on the same core a few. Each regime is measured
# on purpose instead of whatever the scheduler picks.
REGIMES = {
    "cores": "caller and gate on different cores",
    "one": "caller and gate on one core",
    "free": "threads free to move (the scheduler's choice)",
}


def pinned_regimes(n: int) -> list[tuple[str, dict[str, list[int]]]]:
    """`bench_messaging` with the caller and the actors on different cores (when
    there are two), on one core, and free to move, keyed as in REGIMES."""
    cpus = sorted(os.sched_getaffinity(0))
    out = []
    try:
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[1]})  # actors started now inherit the second core
            out.append(("cores", bench_messaging(n, caller={cpus[0]})))
        os.sched_setaffinity(0, {cpus[0]})
        out.append(("one", bench_messaging(n, caller={cpus[0]})))
    finally:
        os.sched_setaffinity(0, set(cpus))
    out.append(("free", bench_messaging(n)))  # every thread on every core: wherever the scheduler puts it
    return out


if __name__ == "__main__":
    main()
