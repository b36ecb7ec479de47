"""Several instances on one PostgreSQL (section 10 of `python -m bench`; docs/scale-out.md).

A throwaway server from this machine's binaries (supervisor.shared.local_server):

1. evaluate p50, postgresql backend vs sqlite backend, interleaved rounds, one core:
   the leases are spent in memory, so no order waits for the database;
2. decisions/s of one instance alone, then of two instances (processes) on one cap at
   once: their sum over one's;
3. a halt through instance A -> the first block on instance B, 50 times;
4. an instance killed with SIGKILL holding the whole cap -> the first order the
   survivor can place with it (lease TTL + a renewal period at most).

Run alone: .venv/bin/python -m bench.shared
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import pct
from bench.gate_latency import bench_config, fed_supervisor, order
from supervisor import RiskSupervisor, parse_config
from supervisor.shared.db import connect
from supervisor.shared.local_server import LocalServer, missing_reason
from supervisor.shared.schema import migrate
from tests.helpers import config_dict

TTL_S = 2.0
POLL_S = 0.2


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shared_config(dsn: str, name: str, cap_usd: float = 1e15, slice_pct: float = 100.0, **store: Any):
    base = bench_config(100)
    data = config_dict(
        gate={
            "max_orders_per_s": 10**9,
            "evaluate_timeout_s": 5.0,
            "max_repeats": 10**9,
            "reservation_ttl_s": TTL_S,
        },
        risk_v3={"max_age_s": 3600.0},
        ess={"max_age_s": 3600.0},
        accounts={"max_age_s": 3600.0},
        state={"dir": tempfile.mkdtemp(prefix=f"riskgate-bench-{name}-")},
        store={
            "backend": "postgresql",
            "dsn": dsn,
            "lease_slice_pct": slice_pct,
            "poll_interval_s": POLL_S,
            "lease_ttl_s": TTL_S,
            "max_age_s": 3.0,
            **store,
        },
        instance={"name": name},
    )
    data["accounts"].update({n: {"exchange": a.exchange, "capital_profile": a.capital_profile,
                                 "max_notional_usd": a.max_notional_usd}
                             for n, a in base.accounts.accounts.items() if n.startswith("acct")})  # fmt: skip
    data["exchanges"]["binance"]["max_notional_usd"] = cap_usd
    return parse_config(data)


def _confirmed(sup: RiskSupervisor, timeout: float = 10.0) -> None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        st = sup.shared.keeper.status() if sup.shared is not None else None
        if st is not None and st.ok and st.held:
            return
        time.sleep(0.01)
    raise RuntimeError("the instance never confirmed the shared state")


def latency(dsn: str, n: int, rounds: int = 10) -> dict[str, float]:
    """1: evaluate p50/p99 with each backend, interleaved rounds, caller and actors on one core."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    try:
        # Both with the reservation TTL of this section's other measures (TTL_S): only the backend
        # differs. (With 30 s on the SQLite side, half the PostgreSQL side's decisions expired an
        # earlier reservation and none of the SQLite side's did; and 30 s on the PostgreSQL side
        # would keep its in-flight budget leased past its stop into the measures after it.)
        base = bench_config(100)
        lite = fed_supervisor(replace(base, gate=replace(base.gate, reservation_ttl_s=TTL_S)))
        pg = fed_supervisor(shared_config(dsn, "latency"))
        _confirmed(pg)
        orders = [order(i) for i in range(1000)]
        samples: dict[str, list[int]] = {"sqlite": [], "postgresql": []}
        perf = time.perf_counter_ns
        for _ in range(rounds):
            for name, sup in (("sqlite", lite), ("postgresql", pg)):
                out = samples[name]
                for i in range(n // rounds):
                    t0 = perf()
                    r = sup.evaluate(orders[i % 1000])
                    out.append(perf() - t0)
                assert r.decision == "allow", r
        lite.stop()
        pg.stop()
    finally:
        os.sched_setaffinity(0, set(cpus))
    return {f"{k}_{q}": pct(v, p) for k, v in samples.items() for q, p in (("p50", 0.5), ("p99", 0.99))}


_QUIET = (
    "import logging; from supervisor.logs import configure_logging; "
    "configure_logging('console', level=logging.ERROR, stream=sys.stderr)"
)
_WORKER = (
    """
import json, sys, time
sys.path.insert(0, {root!r})
"""
    + _QUIET
    + """
from bench.shared import shared_config, _confirmed
from bench.gate_latency import fed_supervisor, order
cfg = shared_config({dsn!r}, {name!r}, slice_pct=50.0)  # each may lease half the cap
if not {journal!r}:
    import dataclasses
    cfg = dataclasses.replace(cfg, journal=dataclasses.replace(cfg.journal, enabled=False))
sup = fed_supervisor(cfg)
_confirmed(sup)
orders = [order(i) for i in range(1000)]
print("ready", flush=True)
sys.stdin.readline()
n, allowed, codes, end = 0, 0, {{}}, time.perf_counter() + {seconds}
while time.perf_counter() < end:
    r = sup.evaluate(orders[n % 1000]); n += 1
    allowed += r.decision == "allow"; codes[r.reason_code.value] = codes.get(r.reason_code.value, 0) + 1
print(json.dumps({{"n": n, "allowed": allowed, "seconds": {seconds}, "codes": codes}}), flush=True)
sup.stop()
"""
)


def _workers(dsn: str, names: list[str], seconds: float, journal: bool = True) -> tuple[float, float]:
    root = str(Path(__file__).resolve().parents[1])
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER.format(root=root, dsn=dsn, name=name, seconds=seconds,
                                                                journal=journal)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for name in names
    ]  # fmt: skip
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # all start together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    total, allowed = 0.0, 0.0
    for p in procs:
        assert p.stdout is not None
        out = json.loads(p.stdout.readline())
        total += out["n"] / out["seconds"]
        allowed += out["allowed"] / out["seconds"]
        print(f"   {out['n'] / out['seconds']:,.0f}/s: {out['codes']}", file=sys.stderr)
        p.wait(30)
    return total, allowed


def throughput(dsn: str, seconds: float = 3.0, journal: bool = True) -> dict[str, float]:
    """2: one instance's decisions/s alone, then two instances' sum, each a process of its own
    (`journal=False`: without the journal's writer process, one process per instance)."""
    one, one_allowed = _workers(dsn, ["solo"], seconds, journal)
    two, two_allowed = _workers(dsn, ["pair-a", "pair-b"], seconds, journal)
    return {"one": one, "two": two, "one_allowed": one_allowed, "two_allowed": two_allowed}


def halt_propagation(dsn: str, tries: int = 50) -> list[float]:
    """3: a halt through A, then B's first block, in ms (real LISTEN/NOTIFY and rounds)."""
    a = fed_supervisor(shared_config(dsn, "halt-a"))
    b = fed_supervisor(shared_config(dsn, "halt-b"))
    _confirmed(a)
    _confirmed(b)
    taken: list[float] = []
    seq = 0
    try:
        for _ in range(tries):
            t0 = time.perf_counter()
            a.halt("bench", by="bench")
            # B's board, looked at every millisecond: the next order B decides reads it (a loop of
            # orders in this process would time B's threads, not the halt's way to B).
            while not b.controls.halt_status().get("active"):
                time.sleep(0.001)
            taken.append((time.perf_counter() - t0) * 1000)
            seq += 1
            assert b.evaluate(order(seq)).reason_code.value == "ESS_HALT_ACTIVE"
            a.resume(by="bench")
            while b.controls.halt_status().get("active"):
                time.sleep(0.001)
    finally:
        a.stop()
        b.stop()
    return taken


def budget_return(dsn: str) -> dict[str, float]:
    """4: A (a process) leases the whole cap and is killed; seconds until B can use it. The bench's
    accounts hold 1.65M USD of positions on the exchange: 350,000 USD of the cap is left to lease."""
    cap = 2_000_000.0
    root = str(Path(__file__).resolve().parents[1])
    holder = f"""
import sys, time
sys.path.insert(0, {root!r})
{_QUIET}
from bench.shared import shared_config, _confirmed
from bench.gate_latency import fed_supervisor
sup = fed_supervisor(shared_config({dsn!r}, "holder", cap_usd={cap}, slice_pct=100.0))
_confirmed(sup)
print("ready", flush=True)
time.sleep(3600)
"""
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return _survive(dsn, cap, proc)
    finally:
        if proc.poll() is None:  # a benchmark interrupted: the holder never outlives it
            proc.kill()


def _survive(dsn: str, cap: float, proc: subprocess.Popen[str]) -> dict[str, float]:
    b = fed_supervisor(shared_config(dsn, "survivor", cap_usd=cap, slice_pct=100.0))
    _confirmed(b)
    big = dict(order(0), account="acct1", quantity=4.6, order_id="big")  # 299,000 USD
    assert b.evaluate(dict(big, order_id="before")).reason_code.value == "BUDGET_UNAVAILABLE"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    t0 = time.perf_counter()
    n = 0
    while True:
        n += 1
        r = b.evaluate(dict(big, order_id=f"after-{n}"))
        if r.decision == "allow":
            break
        if time.perf_counter() - t0 > 60:
            raise RuntimeError("the survivor never got the budget")
        time.sleep(0.005)
    took = time.perf_counter() - t0
    b.stop()
    return {"seconds": took, "ttl_s": TTL_S, "renewal_s": POLL_S}


def run(n: int) -> dict[str, Any] | str:
    why = missing_reason()
    if why is not None:
        return why
    folder = Path(tempfile.mkdtemp(prefix="riskgate-bench-pg-"))
    server = LocalServer(folder, _port()).start()
    try:
        dsn = server.dsn()
        conn = connect(dsn, 5.0, "bench")
        migrate(conn)
        conn.close()
        out: dict[str, Any] = {"latency": latency(dsn, n)}
        out["throughput"] = throughput(dsn)
        out["throughput_no_journal"] = throughput(dsn, journal=False)
        out["halt_ms"] = halt_propagation(dsn)
        out["budget"] = budget_return(dsn)
        return out
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    import logging

    from supervisor.logs import configure_logging

    configure_logging("console", level=logging.ERROR, stream=sys.stderr)
    print(json.dumps(run(20_000), indent=1))
