"""What-if replay's speed (issue 27: 1,000,000 decisions within 60 s on the 2-vCPU machine).

A journal of `n` decisions is recorded first by a real `Gate` (100 accounts, a fake clock
stepping 1 ms a decision; every 500 decisions a Risk v3 reading, an ESS reading and a price
snapshot, every 2,000 each account's snapshot; each order's outcome (filled) 20 decisions later),
written by the journal's own writer. Then `replay_journal` decides all of it again under the
live config (the fidelity check: 0 changed) and under a stricter one, each timed alone.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from actors.journal import _rows
from bench.gate_latency import order, positions
from supervisor.channels.ess_board import EssBoard
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import FakeClock
from supervisor.config import Config, parse_config
from supervisor.core.messages import (
    AccountState,
    EssSourceStatus,
    EssState,
    EvaluateOrder,
    OrderOutcome,
    Position,
    PriceSnapshot,
    RiskSignal,
)
from supervisor.core.orders import validate_order
from supervisor.gate import Gate
from supervisor.journal.sqlite_file import JournalWriter
from supervisor.journal.store import JOURNAL_NAME
from supervisor.replay import replay_journal
from tests.helpers import config_dict

__all__ = ["record", "run", "shadow_on_vs_off"]


EXCHANGES = ("binance", "bybit")


def bench_config(folder: Path, leverage: float = 3.0, exchanges: int = 1) -> Config:
    """100 accounts on `exchanges` exchanges (account i on the (i % exchanges)-th)."""
    data = config_dict(
        gate={"max_orders_per_s": 10**6, "duplicate_window_s": 5.0},
        state={"dir": str(folder)},
        prices={"url": "http://127.0.0.1:1", "symbols": ["BTCUSDT", "ETHUSDT"], "max_age_s": 5.0},
    )
    data["profiles"]["normal"]["allowed_leverage"] = leverage
    for i in range(100):
        data["accounts"][f"acct{i}"] = {"exchange": EXCHANGES[i % exchanges], "capital_profile": "normal",
                                        "max_notional_usd": 1e12}  # fmt: skip
    for name in EXCHANGES:
        data["exchanges"][name] = {"max_notional_usd": 1e15}
    return parse_config(data)


def record(folder: Path, n: int, exchanges: int = 1) -> Config:
    """A journal of `n` decisions in `folder`, recorded by a real gate; its config."""
    cfg = bench_config(folder, exchanges=exchanges)
    clock = FakeClock()
    queue = JournalQueue(10**7, block_when_failing=False)
    board = EssBoard()
    gate = Gate(cfg, clock, board, queue)
    gate.open("bench")
    writer = JournalWriter(folder / JOURNAL_NAME)

    def feed(i: int) -> None:
        now = clock.monotonic()
        board.publish(EssState.combine((EssSourceStatus("bench", False),)), now)
        gate.post(RiskSignal("INFO", clock.now()), now)
        gate.post(PriceSnapshot(clock.now(), {"BTCUSDT": 65_000.0 + i % 7, "ETHUSDT": 3_500.0}), now)
        if i % 2_000 == 0:
            for a in range(100):
                held = tuple(
                    Position(p.symbol, EXCHANGES[a % exchanges], p.quantity, p.mark_price) for p in positions()
                )
                gate.post(AccountState(f"acct{a}", 1e9, held, 1e9, 1e9), now)

    for i in range(n):
        if i % 500 == 0:
            feed(i)
        if i >= 20:  # each order ends 20 decisions later (filled): reservations stay few, as live
            gate.post(OrderOutcome(f"o{i - 20}", "filled", 0.01, f"acct{(i - 20) % 100}"))
        o = validate_order(dict(order(i), order_id=f"o{i}", exchange=EXCHANGES[i % 100 % exchanges]), cfg)
        assert not isinstance(o, str)
        gate.decide(EvaluateOrder(o, config=cfg), None)
        clock.advance(0.001)
        if len(queue) >= 20_000:
            _flush(queue, writer)
    _flush(queue, writer)
    writer.close()
    return cfg


def _flush(queue: JournalQueue, writer: JournalWriter) -> None:
    batch = queue.peek(len(queue))
    writer.write(*_rows(queue.run, batch, lambda seq, exc: None))
    queue.remove_through(batch[-1].seq)


def run(n: int = 1_000_000, exchanges: int = 1, workers: int = 1, keep: Path | None = None) -> dict[str, Any]:
    """Record `n` decisions on `exchanges` exchanges, then replay them under the live config and
    a stricter one, in `workers` processes. `keep`: record in that folder and leave it (for the
    compiled core's replay of the same journal, bench.compiled)."""
    with contextlib.ExitStack() as stack:
        folder = (
            keep if keep is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="riskgate-")))
        )
        t0 = time.perf_counter()
        live = record(folder, n, exchanges)
        recorded_s = time.perf_counter() - t0
        journal = folder / JOURNAL_NAME
        t0 = time.perf_counter()
        same = replay_journal(journal, live, workers=workers)
        same_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        strict = replay_journal(journal, bench_config(folder, leverage=1.5, exchanges=exchanges), workers=workers)
        strict_s = time.perf_counter() - t0
        return {
            "n": n,
            "exchanges": exchanges,
            "workers": workers,
            "recorded_s": recorded_s,
            "journal_mb": journal.stat().st_size / 2**20,
            "same_s": same_s,
            "same_total": same.total,
            "same_changed": same.changed,
            "strict_s": strict_s,
            "strict_changed": strict.changed,
            "span": str(timedelta(seconds=round(n * 0.001))),
        }


def shadow_on_vs_off(n: int) -> dict[str, float]:
    """evaluate p50 of a riskgate with a shadow config beside one without, interleaved rounds, the
    scheduler placing threads and processes (the shadow's process takes what the other core has)."""
    from bench.journal import _interleaved
    from supervisor import AccountSnapshot, RiskSupervisor
    from supervisor.sim.demo import toml_text

    def started(shadow: bool) -> RiskSupervisor:
        folder = Path(tempfile.mkdtemp(prefix="riskgate-bench-shadow-"))
        data = config_dict(
            gate={"max_orders_per_s": 10**9, "evaluate_timeout_s": 5.0},
            risk_v3={"max_age_s": 3600.0}, ess={"max_age_s": 3600.0}, accounts={"max_age_s": 3600.0},
            state={"dir": str(folder / "state")},
        )  # fmt: skip
        for i in range(100):
            data["accounts"][f"acct{i}"] = {
                "exchange": "binance",
                "capital_profile": "normal",
                "max_notional_usd": 1e12,
            }
        data["exchanges"]["binance"]["max_notional_usd"] = 1e15
        if shadow:
            candidate = dict(data, profiles={**data["profiles"], "normal": {**data["profiles"]["normal"],
                                                                            "allowed_leverage": 1.5}})  # fmt: skip
            (folder / "candidate.toml").write_text(toml_text(candidate))
            data["shadow"] = {"config": str(folder / "candidate.toml"), "poll_interval_s": 0.1}
        sup = RiskSupervisor(parse_config(data), poll_upstreams=False).start()
        sup.report_ess_active(False)
        sup.report_risk_signal(RiskSignal("INFO", sup.clock.now()))
        for i in range(100):
            sup.report_account_snapshot(AccountSnapshot(f"acct{i}", 1e9, positions()))
        return sup

    on, off = started(True), started(False)
    try:
        s = _interleaved({"on": (on.evaluate, order), "off": (off.evaluate, order)}, n)
        on.flush_journal()
        shadow = on._system.shadow
        shadow.wait_until(lambda r: r.decided >= len(s["on"]), 120.0)
        summary = on.shadow()
    finally:
        on.stop()
        off.stop()
    from bench.common import pct

    return {
        "on_p50": pct(s["on"], 0.5),
        "off_p50": pct(s["off"], 0.5),
        "shadow_decided": summary["decided"],
        "shadow_disagreements": summary["disagreements"],
    }


def run_alone(n: int, exchanges: int, workers: int, keep: Path | None = None) -> dict[str, Any]:
    """`run` in a process of its own, as `riskgate replay` runs: the benchmark's own process carries
    what its earlier sections left (about 490,000 objects and two idle threads), which the forked
    workers inherit; there the same replay took 8 % longer (docs/benchmarks.md, notes)."""
    argv = [sys.executable, "-m", "bench.replay", "--json", str(n), str(exchanges), str(workers)]
    argv += [str(keep)] if keep is not None else []
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench.replay failed: {done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    if "--json" in sys.argv:
        from bench.common import quiet

        quiet()
        n, exchanges, workers, *kept = sys.argv[sys.argv.index("--json") + 1 :]
        print(json.dumps(run(int(n), int(exchanges), int(workers), keep=Path(kept[0]) if kept else None)))
        sys.exit(0)
    args = [int(a) for a in sys.argv[1:]]
    print(run(*args) if args else run(100_000))
