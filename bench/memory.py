"""Memory per reservation held (issue 28, target 4), in a process of its own.

One `Gate` (the real one: decision, booking, expiry) on a FakeClock, 100 accounts. N
orders are approved and held (no outcome comes back), then time passes beyond
`gate.reservation_ttl_s` and `gate.duplicate_window_s` (the ids it remembers) and the
gate expires them; its housekeeping (`Gate.tick`, as the actor's timer runs it) then gives
the freed memory back to the OS. Measured: Python's own allocations (tracemalloc, exact) and
the process's RSS (what the OS sees), before, with N held, and after.

Run: .venv/bin/python -m bench.memory [N ...]
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

from bench.gate_latency import bench_config, order, positions
from supervisor.channels.ess_board import EssBoard
from supervisor.clock import FakeClock
from supervisor.core.messages import AccountState, EssSourceStatus, EssState, EvaluateOrder, RiskSignal
from supervisor.core.orders import validate_order
from supervisor.gate import Gate


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker(n: int) -> dict[str, float]:
    cfg = bench_config(100)
    clock = FakeClock()
    board = EssBoard()
    gate = Gate(cfg, clock, board)
    gate.arm()
    gate.open("bench")
    now = clock.monotonic()
    board.publish(EssState.combine((EssSourceStatus("bench", False),)), now)
    gate.post(RiskSignal("INFO", clock.now()), now)
    for i in range(100):
        gate.post(AccountState(f"acct{i}", 1e9, positions(), 1e9, 1e9), now)
    # gate_latency's orders, each its own id and one of 997 prices (terms repeat only so often)
    orders = [validate_order(dict(order(i), price=65_000.0 + (i % 997), order_id=f"o{i}"), cfg) for i in range(n)]
    gc.collect()
    tracemalloc.start()
    base_py, base_rss = tracemalloc.get_traced_memory()[0], _rss_kb()
    figures: dict[str, float] = {"n": n}
    for wave in (1, 2):  # the second wave shows whether what the first freed is used again
        allowed = 0
        for plain in orders:
            o = replace(plain, order_id=f"{plain.order_id}-{wave}")
            r = gate.decide(EvaluateOrder(o, config=cfg), wait=5.0)
            allowed += r is not None and not isinstance(r, str) and r.decision == "allow"
        gate.tick()  # the actor's timer runs while they are held (every poll interval)
        gc.collect()
        held_py, held_rss = tracemalloc.get_traced_memory()[0], _rss_kb()
        stats = gate.stats(reset=False) or {}
        clock.advance(max(cfg.gate.reservation_ttl_s, cfg.gate.duplicate_window_s) + 1.0)
        now = clock.monotonic()
        board.publish(EssState.combine((EssSourceStatus("bench", False),)), now)
        gate.post(RiskSignal("INFO", clock.now()), now)
        for i in range(100):
            gate.post(AccountState(f"acct{i}", 1e9, positions(), 1e9, 1e9), now)
        probe = replace(orders[0], order_id=f"after-{wave}")
        gate.decide(EvaluateOrder(probe, config=cfg), wait=5.0)  # expires everything past its TTL
        gate.tick()  # its housekeeping: journals the expiries and gives their memory back (supervisor.heap)
        gc.collect()
        after_py, after_rss = tracemalloc.get_traced_memory()[0], _rss_kb()
        figures.update({
            f"w{wave}_allowed": allowed,
            f"w{wave}_held": float(stats.get("reservations", -1)),
            f"w{wave}_py_per": (held_py - base_py) / n,
            f"w{wave}_rss_per": (held_rss - base_rss) * 1024 / n,
            f"w{wave}_py_after_kb": (after_py - base_py) / 1024,
            f"w{wave}_rss_after_kb": float(after_rss - base_rss),
            f"w{wave}_given_back": float(gate.memory_given_back),
        })  # fmt: skip
    tracemalloc.stop()
    return figures


def run(sizes: tuple[int, ...] = (10_000, 100_000)) -> list[dict[str, float]]:
    root = Path(__file__).resolve().parents[1]
    out = []
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--worker", str(n)],
            capture_output=True, text=True, cwd=root, timeout=600, check=True,
        )  # fmt: skip
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        from supervisor.logs import configure_logging

        configure_logging("json", level=40, stream=sys.stderr)
        print(json.dumps(worker(int(sys.argv[2]))))
    else:
        sizes = tuple(int(a) for a in sys.argv[1:]) or (10_000, 100_000)
        for r in run(sizes):
            for w in (1, 2):
                print(
                    f"{int(r['n']):>7} held, wave {w} ({int(r[f'w{w}_allowed'])} allowed): "
                    f"{r[f'w{w}_py_per']:.0f} B each (Python), {r[f'w{w}_rss_per']:.0f} B (RSS) above the start; "
                    f"after expiry {r[f'w{w}_py_after_kb']:.0f} KiB (Python), {r[f'w{w}_rss_after_kb']:.0f} KiB (RSS)"
                )
