"""Section 9: the HTTP API, and the cost of metrics.

`POST /v1/evaluate` on loopback to `riskgate`'s API (uvicorn in its own
process, every check done) beside the original per-order design (a GET of
`/risk/global` from the simulator, in its own process, then the same pure
checks), interleaved in one run, one keep-alive client each. Then
`RiskSupervisor.evaluate` with metrics on beside metrics off (one core).

`python -m bench.http_api` runs this section alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from bench.common import control, pct, simulator_process
from bench.gate_latency import bench_config, fed_supervisor, order
from bench.original_design import PerOrderHttpGate
from supervisor.config import MetricsConfig, StateConfig


def serve() -> None:
    """The API process: a fed supervisor serving on a free port; prints its URL, runs until stdin closes."""
    from bench.common import quiet

    quiet()
    sup = fed_supervisor(bench_config(100))
    server = sup.serve_api(host="127.0.0.1", port=0)
    print(server.url, flush=True)
    sys.stdin.read()
    sup.stop()


@contextmanager
def api_process() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http_api", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not url.startswith("http://"):
            raise RuntimeError(f"the API process did not start: {url!r}")
        yield url
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(15)


def http_vs_original(n: int = 2_000) -> dict[str, float]:
    with simulator_process("--risk", "info") as sim_url, api_process() as api_url:
        control(sim_url, "/control/risk", {"level": "info"})
        original = PerOrderHttpGate(sim_url)
        client = httpx.Client(base_url=api_url, timeout=5.0)
        orders = [order(i) for i in range(1000)]

        def over_http(raw: dict) -> str:
            return str(client.post("/v1/evaluate", json=raw).json()["decision"])

        assert original.evaluate(orders[0]).decision == over_http(orders[0]) == "allow"
        for i in range(200):  # warm both
            original.evaluate(orders[i])
            over_http(orders[i])
        samples: dict[str, list[int]] = {"original": [], "http": []}
        perf = time.perf_counter_ns
        for _ in range(10):
            for name, call in (("original", original.evaluate), ("http", over_http)):
                for i in range(n // 10):
                    t0 = perf()
                    call(orders[i % 1000])
                    samples[name].append(perf() - t0)
        client.close()
        original.client.close()
    out = {f"{name}_{q}": pct(s, v) for name, s in samples.items() for q, v in (("p50", 0.5), ("p99", 0.99))}
    out["ratio_p50"] = out["original_p50"] / out["http_p50"]
    return out


def metrics_on_vs_off(n: int = 20_000, rounds: int = 10) -> dict[str, float]:
    """evaluate p50 with the gate counting for /metrics and without, interleaved, one core."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    try:
        on_cfg = bench_config(100)
        subjects = {
            "on": fed_supervisor(on_cfg),
            "off": fed_supervisor(
                replace(
                    on_cfg,
                    metrics=MetricsConfig(enabled=False),
                    state=StateConfig(dir=Path(tempfile.mkdtemp(prefix="riskgate-bench-"))),  # one per folder
                )
            ),
        }
        orders = [order(i) for i in range(1000)]
        samples: dict[str, list[int]] = {"on": [], "off": []}
        perf = time.perf_counter_ns
        for _ in range(rounds):
            for name, sup in subjects.items():
                evaluate = sup.evaluate
                for i in range(n // rounds):
                    t0 = perf()
                    evaluate(orders[i % 1000])
                    samples[name].append(perf() - t0)
        for sup in subjects.values():
            sup.stop()
    finally:
        os.sched_setaffinity(0, set(cpus))
    return {"on_p50": pct(samples["on"], 0.5), "off_p50": pct(samples["off"], 0.5)}


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
        sys.exit(0)
    from bench.common import quiet

    quiet()
    r = http_vs_original()
    print(f"POST /v1/evaluate (riskgate API): p50 {r['http_p50']:.0f} µs  p99 {r['http_p99']:.0f} µs")
    print(f"per-order GET /risk/global:       p50 {r['original_p50']:.0f} µs  p99 {r['original_p99']:.0f} µs")
    print(f"the API is {r['ratio_p50']:.2f}x faster at p50 (target >= 2x)")
    m = metrics_on_vs_off()
    ratio = m["on_p50"] / m["off_p50"]
    print(f"evaluate p50, metrics on vs off: {m['on_p50']:.1f} vs {m['off_p50']:.1f} µs = {ratio:.3f}x")
