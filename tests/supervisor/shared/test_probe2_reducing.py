"""Probe 2: a reducing order needs no budget, and each instance judged "reducing" against
the account's position less its *own* reducing orders in flight. Three instances each
approved a sell of the whole long position: once filled the account was short twice that
size, beyond the account cap (and beyond what any instance approved as new exposure).

Now each position has a reduction budget leased like a cap (core.budget.reduce_key): what an
instance closes beyond its lease counts as opening (its USD budget, its checks). Over every
instance, no more than the position is ever closed; an instance that wants to close asks for
the budget and gets it at its keeper's next round."""

from __future__ import annotations

from supervisor.clock import FakeClock
from supervisor.core.messages import AccountState, EvaluateOrder, Position
from supervisor.core.orders import validate_order
from tests.supervisor.shared.test_invariant import ACCOUNT_CAP, PRICE, RICH, Instance, config


def _close(inst, cfg, n: int, qty: float):
    raw = {"order_id": f"close-{inst.name}-{n}", "account": "main", "exchange": "binance",
           "strategy_id": "trend_v2", "symbol": "SOLUSDT", "side": "sell", "quantity": qty,
           "price": PRICE, "leverage": 1.0}  # fmt: skip
    return inst.gate.decide(EvaluateOrder(validate_order(raw, cfg), config=cfg), wait=5.0)


def test_three_instances_each_close_the_whole_position(migrated_dsn):
    cfg = config(migrated_dsn)
    clock = FakeClock()
    held = ACCOUNT_CAP / PRICE  # 7 SOL long: the account's whole 700 USD cap
    instances = [Instance(n, cfg, clock, migrated_dsn) for n in ("a", "b", "c")]
    for inst in instances:
        for account, qty in (("main", held), ("tiny", 0.0)):
            pos = (Position("SOLUSDT", "binance", qty, PRICE),) if qty else ()
            inst.gate.post(AccountState(account, RICH, pos, RICH, RICH), clock.monotonic())
        assert inst.keeper.round()
    sold = 0.0
    for n in range(3):  # each tries, its keeper asks for the budget, each tries again
        for inst in instances:
            r = _close(inst, cfg, n, held)
            if r.decision != "block":
                sold += r.adjusted_quantity
            assert sold <= held + 1e-9, (n, inst.name, sold)
        for inst in instances:
            assert inst.keeper.round()
    final = held - sold  # every approved order filled
    assert abs(final) * PRICE <= ACCOUNT_CAP + 1e-6, (sold, final, abs(final) * PRICE)
    assert sold == held  # and the position could be closed: by whichever instance got the budget
