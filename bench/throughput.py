"""Decisions per second through `RiskSupervisor.evaluate` with 1, 4 and 16 caller threads.

Each figure comes with the journal's backlog when the callers stop: the
journal writes on its own thread under the same GIL, so a rate it did not
keep up with is not one the gate could sustain.
"""

from __future__ import annotations

import threading
import time

from bench.gate_latency import bench_config, fed_supervisor, order


def throughput(threads: int, seconds: float = 2.0) -> tuple[float, int]:
    """(decisions/s, journal records still queued when the callers stopped)."""
    sup = fed_supervisor(bench_config(100))
    orders = [order(i) for i in range(1000)]
    counts = [0] * threads
    start, stop = threading.Barrier(threads + 1), threading.Event()

    def caller(n: int) -> None:
        start.wait()
        i = 0
        while not stop.is_set():
            sup.evaluate(orders[(i * 7 + n) % 1000])
            i += 1
        counts[n] = i

    workers = [threading.Thread(target=caller, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    backlog = len(sup.journal)
    sup.stop()
    return sum(counts) / elapsed, backlog


def run() -> dict[int, tuple[float, int]]:
    return {n: throughput(n) for n in (1, 4, 16)}


if __name__ == "__main__":
    for n, (rate, backlog) in run().items():
        print(f"{n:2d} threads: {rate:,.0f} decisions/s, journal backlog {backlog:,}")
