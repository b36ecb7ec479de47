"""A small process deciding orders as fast as it can, for the kill -9 test.

Prints `<order id> <monotonic time> <decision>` after each decision; runs until
killed. A second argument sets `journal.durability` ("batch" or "commit").
"""

from __future__ import annotations

import sys
import time

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.logs import configure_logging
from tests.helpers import make_config, order, signal


def main(state_dir: str, durability: str = "batch") -> None:
    configure_logging("json", stream=sys.stderr)  # stdout carries the decisions only
    cfg = make_config(
        state={"dir": state_dir},
        gate={"max_orders_per_s": 1_000_000},
        ess={"max_age_s": 3600.0},
        risk_v3={"max_age_s": 3600.0},
        accounts={"max_age_s": 3600.0},
        journal={"flush_interval_s": 0.1, "durability": durability, "writer": "process"},  # production's
    )
    sup = RiskSupervisor(cfg, poll_upstreams=False).start()
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 1e9))
    i = 0
    out = sys.stdout
    while True:
        oid = f"d{i}"
        r = sup.evaluate(order(order_id=oid, quantity=0.1, strategy_id="experimental_hft" if i % 3 else "trend_v2"))
        out.write(f"{oid} {time.monotonic()} {r.decision}\n")
        out.flush()
        i += 1


if __name__ == "__main__":
    main(*sys.argv[1:3])
