"""The original design beside riskgate, same orders, same run.

The original `RiskStateFacade` fetched `/risk/global` over HTTP for every
order before checking it. Here that is an httpx GET to the upstream simulator
(its own process, keep-alive connection) plus the same pure checks, against
`RiskSupervisor.evaluate`, which answers from in-memory state.
"""

from __future__ import annotations

import time

import httpx

from bench.common import control, pct, simulator_process
from bench.gate_latency import bench_config, fed_supervisor, order, positions
from supervisor.clock import SystemClock
from supervisor.core.evaluate import evaluate_order
from supervisor.core.gate_state import GateState
from supervisor.core.messages import AccountState, EssSourceStatus, EssState
from supervisor.sources.upstream import parse_risk_signal


class PerOrderHttpGate:
    """A gate that asks Global Risk v3 over HTTP for every order (the original design)."""

    def __init__(self, url: str) -> None:
        self.config = bench_config(100)
        self.clock = SystemClock()
        self.client = httpx.Client(timeout=2.0)
        self.url = f"{url}/risk/global"
        self.state = GateState()
        now = self.clock.monotonic()
        self.state.ess, self.state.ess_received = EssState.combine((EssSourceStatus("bench", False),)), now
        for i in range(100):
            self.state.put_account(AccountState(f"acct{i}", 1e9, positions(), 1e9, 1e9), now)

    def evaluate(self, raw: dict):
        self.state.signal = parse_risk_signal(self.client.get(self.url).json())
        now = self.clock.monotonic()
        self.state.signal_received = self.state.ess_received = now
        for book in self.state.books.values():
            book.received = now
        return evaluate_order(raw, self.state, self.config, now, self.clock.now()).result


def run(n: int = 2000) -> dict[str, float]:
    with simulator_process("--risk", "info") as url:
        control(url, "/control/risk", {"level": "info"})
        original = PerOrderHttpGate(url)
        sup = fed_supervisor(bench_config(100))
        orders = [order(i) for i in range(1000)]
        assert original.evaluate(orders[0]).decision == sup.evaluate(orders[0]).decision == "allow"
        samples: dict[str, list[int]] = {"original": [], "riskgate": []}
        perf = time.perf_counter_ns
        for _ in range(10):  # interleaved rounds
            for name, gate in (("original", original.evaluate), ("riskgate", sup.evaluate)):
                for i in range(n // 10):
                    t0 = perf()
                    gate(orders[i % 1000])
                    samples[name].append(perf() - t0)
        sup.stop()
        original.client.close()
    out = {f"{name}_{q}": pct(s, v) for name, s in samples.items() for q, v in (("p50", 0.5), ("p99", 0.99))}
    out["ratio_p50"] = out["original_p50"] / out["riskgate_p50"]
    return out


if __name__ == "__main__":
    r = run()
    print(f"per-order HTTP (original): p50 {r['original_p50']:.1f} µs  p99 {r['original_p99']:.1f} µs")
    print(f"riskgate evaluate:         p50 {r['riskgate_p50']:.1f} µs  p99 {r['riskgate_p99']:.1f} µs")
    print(f"riskgate is {r['ratio_p50']:.1f}x faster at p50 (target >= 10x)")
