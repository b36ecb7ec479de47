"""The decision journal's cost on the decision path, and whether it keeps up.

1. `evaluate` p50 of a blocked order beside an allowed one, interleaved rounds,
   caller and gate on one core (target: within 1.1x): the block's log line and
   its record are the journal's work, not the gate's.
2. `evaluate` p50 with the journal on beside off, the same way (target 1.1x).
3. The gate's maximum throughput (4 caller threads) for 60 s with the journal
   on: its backlog sampled every second (no growth), RSS at the start, the
   middle and the end. The orders' outcomes are never reported, so the gate
   holds each allowed order's reservation for `reservation_ttl_s` (30 s): RSS
   grows for the first 30 s whatever the journal does, and must be flat after.
4. `journal.durability` "batch" beside "commit": evaluate latency of approved
   orders (p50, p99) and decisions per second, with 1 and 4 caller threads, for
   a few seconds each (commit: an approval is answered once its record is
   committed; concurrent callers share commits).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from bench.common import pct, rss_mb
from bench.gate_latency import order, positions
from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.config import parse_config
from supervisor.core.messages import RiskSignal
from tests.helpers import config_dict


def config(journal_on: bool, durability: str = "batch") -> Any:
    data = config_dict(
        gate={"max_orders_per_s": 10**9, "evaluate_timeout_s": 5.0},
        risk_v3={"max_age_s": 3600.0},
        ess={"max_age_s": 3600.0},
        accounts={"max_age_s": 3600.0},
        state={"dir": tempfile.mkdtemp(prefix="riskgate-bench-journal-")},
        journal={"enabled": journal_on, "durability": durability},
    )
    for i in range(100):
        data["accounts"][f"acct{i}"] = {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 1e12}
    data["exchanges"]["binance"]["max_notional_usd"] = 1e15
    return parse_config(data)


def fed(journal_on: bool = True, durability: str = "batch") -> RiskSupervisor:
    sup = RiskSupervisor(config(journal_on, durability), poll_upstreams=False).start()
    sup.report_ess_active(False)
    sup.report_risk_signal(RiskSignal("INFO", sup.clock.now(), ess_action_required=False))
    for i in range(100):
        sup.report_account_snapshot(AccountSnapshot(f"acct{i}", 1e9, positions()))
    return sup


def _interleaved(subjects: dict[str, Any], n: int, rounds: int = 10) -> dict[str, list[int]]:
    samples: dict[str, list[int]] = {name: [] for name in subjects}
    perf = time.perf_counter_ns
    for _ in range(rounds):
        for name, (call, make) in subjects.items():
            out = samples[name]
            for i in range(n // rounds):
                o = make(i)
                t0 = perf()
                call(o)
                out.append(perf() - t0)
    return samples


def blocked(i: int) -> dict[str, Any]:
    return {**order(i), "strategy_id": "experimental_hft"}  # globally blacklisted: blocked at check 8


def block_vs_allow(n: int) -> dict[str, float]:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})  # one core: the regime with the least noise
    try:
        sup = fed()
        try:
            assert sup.evaluate(order(0)).decision == "allow"
            assert sup.evaluate(blocked(0)).decision == "block"
            s = _interleaved({"allow": (sup.evaluate, order), "block": (sup.evaluate, blocked)}, n)
        finally:
            sup.stop()
    finally:
        os.sched_setaffinity(0, set(cpus))
    return {"allow_p50": pct(s["allow"], 0.5), "block_p50": pct(s["block"], 0.5)}


def on_vs_off(n: int) -> dict[str, float]:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    try:
        on, off = fed(True), fed(False)
        try:
            s = _interleaved({"on": (on.evaluate, order), "off": (off.evaluate, order)}, n)
        finally:
            on.stop()
            off.stop()
    finally:
        os.sched_setaffinity(0, set(cpus))
    return {"on_p50": pct(s["on"], 0.5), "off_p50": pct(s["off"], 0.5)}


def sustained(seconds: float = 60.0, callers: int = 4) -> dict[str, float]:
    sup = fed()
    journal = sup._runtime.journal
    stop = threading.Event()
    counts = [0] * callers

    def caller(k: int) -> None:
        i = 0
        while not stop.is_set():
            sup.evaluate(order(i) if i % 4 else blocked(i))  # a quarter blocked: each logs a line
            i += 1
        counts[k] = i

    threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(callers)]
    backlog: list[int] = []
    rss: list[float] = []
    rss_start = rss_mb()
    for t in threads:
        t.start()
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        stop.wait(1.0)
        backlog.append(len(journal))
        rss.append(rss_mb())
    stop.set()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - began
    rss_end = rss_mb()
    sup.flush_journal(timeout=60)
    written, dropped, left = journal.written, journal.dropped, len(journal)
    held = len(sup._runtime.gate._state.reservations) if sup._runtime.gate._state else 0
    sup.stop()
    half = len(backlog) // 2
    return {
        "rate": sum(counts) / elapsed,
        "backlog_max": max(backlog),
        "backlog_first_half_max": max(backlog[:half]) if half else 0,
        "backlog_second_half_max": max(backlog[half:]),
        "rss_start": rss_start,
        "rss_half": rss[half - 1] if half else rss_start,
        "rss_end": rss_end,
        "reservations": held,
        "written": written,
        "dropped": dropped,
        "left": left,
        "decided": sum(counts),
    }


def durability(seconds: float = 3.0, callers: int = 1) -> dict[str, dict[str, float]]:
    """Approved orders only (each waits for its commit under "commit"), `callers` threads."""
    out: dict[str, dict[str, float]] = {}
    for mode in ("batch", "commit"):
        sup = fed(True, mode)
        stop = threading.Event()
        samples: list[list[int]] = [[] for _ in range(callers)]

        def caller(
            k: int, sup: RiskSupervisor = sup, stop: threading.Event = stop, samples: list[list[int]] = samples
        ) -> None:
            perf = time.perf_counter_ns
            mine = samples[k]
            i = k * 10_000_000
            while not stop.is_set():
                t0 = perf()
                sup.evaluate(order(i))
                mine.append(perf() - t0)
                i += 1

        threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(callers)]
        began = time.monotonic()
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - began
        sup.stop()
        every = [x for s in samples for x in s]
        out[mode] = {"rate": len(every) / elapsed, "p50": pct(every, 0.5), "p99": pct(every, 0.99)}
    return out


def main() -> None:
    bva = block_vs_allow(20_000)
    print(f"blocked vs allowed evaluate p50: {bva['block_p50']:.1f} vs {bva['allow_p50']:.1f} µs")
    oo = on_vs_off(20_000)
    print(f"journal on vs off evaluate p50: {oo['on_p50']:.1f} vs {oo['off_p50']:.1f} µs")
    for callers in (1, 4):
        print(f"durability, {callers} caller(s):", durability(3.0, callers))
    s = sustained(60.0)
    print(s)


if __name__ == "__main__":
    main()
