"""The invariant of leased budgets, under any interleaving hypothesis finds: for every cap,
the positions plus everything the instances have approved and not yet seen end never
exceed the cap. Several real `Gate`s (the production decision and bookkeeping) each with
its keeper, on one real PostgreSQL; orders, fills, cancels, lease rounds, instance kills
and lapsed leases, in any order, the invariant checked after every step (and the schema's
CHECK holds every lease within its cap as a second line)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from supervisor.channels.ess_board import EssBoard
from supervisor.clock import FakeClock
from supervisor.core.gate_state import UNITS_PER_USD
from supervisor.core.messages import (
    AccountState,
    EssSourceStatus,
    EssState,
    EvaluateOrder,
    Fill,
    OrderOutcome,
    Position,
)
from supervisor.core.orders import validate_order
from supervisor.gate import Gate
from supervisor.shared.db import connect
from supervisor.shared.keeper import StoreKeeper
from supervisor.shared.store import SharedStore
from tests.helpers import make_config, signal

EXCHANGE_CAP = 1_000.0
ACCOUNT_CAP = 700.0  # "main" only: "tiny" has none
PRICE = 100.0
RICH = 10_000_000.0


def config(dsn: str, exchange_cap: float = EXCHANGE_CAP):
    return make_config(
        store={"backend": "postgresql", "dsn": dsn, "lease_slice_pct": 50.0},
        gate={"max_orders_per_s": 10**6, "max_messages_per_s": 10**6, "max_repeats": 10**6},
        accounts={
            "main": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": ACCOUNT_CAP},
            "tiny": {"exchange": "binance", "capital_profile": "aggressive"},
        },
        exchanges={"binance": {"max_notional_usd": exchange_cap}, "bybit": {}},
    )


class Instance:
    def __init__(self, name: str, cfg, clock: FakeClock, dsn: str) -> None:
        self.name = name
        board = EssBoard()
        board.publish(EssState.combine((EssSourceStatus("test", False, "clear"),)), clock.monotonic())
        self.gate = Gate(cfg, clock, board)
        self.gate.open("test")
        self.gate.post(signal("INFO", clock.now()), clock.monotonic())
        self.store = SharedStore(dsn, name, f"run-{name}", 1.0, cfg.store.lease_ttl_s)
        self.store.claim("test", None)
        self.keeper = StoreKeeper(
            cfg, clock, self.store, usage=self.gate.budget_round,
            tell=lambda m: self.gate.post(m, clock.monotonic()),
            adopt=lambda found, ticket: None, ready=lambda: True, event=lambda *a, **k: None,
        )  # fmt: skip
        self.in_flight: dict[str, tuple[str, float]] = {}  # order id -> (account, quantity approved)


def two_instances(cfg, clock: FakeClock, dsn: str) -> tuple[Instance, Instance]:
    """Instances a and b, each told both accounts hold nothing."""
    pair = Instance("a", cfg, clock, dsn), Instance("b", cfg, clock, dsn)
    for inst in pair:
        for acct in ("main", "tiny"):
            inst.gate.post(AccountState(acct, RICH, (), RICH, RICH), clock.monotonic())
    return pair


def approved_usd(instances, cfg, tag: str, qty: float) -> float:  # type: ignore[no-untyped-def]
    """One order of `qty` for tiny through each instance in turn; the notional they approved."""
    approved = 0.0
    for n, inst in enumerate(instances):
        r = ask_tiny(inst, cfg, f"{tag}{n}", qty)
        if r.decision != "block":
            approved += r.adjusted_quantity * PRICE
    return approved


def ask_tiny(inst: Instance, cfg, oid: str, qty: float):  # type: ignore[no-untyped-def]
    """A buy of `qty` SOL for account "tiny" (no account cap), decided by `inst`'s gate."""
    raw = {"order_id": oid, "account": "tiny", "exchange": "binance", "strategy_id": "trend_v2",
           "symbol": "SOLUSDT", "side": "buy", "quantity": qty, "price": PRICE, "leverage": 1.0}  # fmt: skip
    return inst.gate.decide(EvaluateOrder(validate_order(raw, cfg), config=cfg), wait=5.0)


class Desk(RuleBasedStateMachine):
    """Instances on one database; the exchange is the model: positions per account."""

    dsn = ""

    @initialize()
    def start(self) -> None:
        conn = connect(self.dsn, 5.0, "test")
        conn.execute("TRUNCATE leases, budgets, instances")
        conn.close()
        self.clock = FakeClock()
        self.cfg = config(self.dsn)
        self.positions = {"main": 0.0, "tiny": 0.0}  # quantity of SOL held, at PRICE
        self.live: list[Instance] = []
        self.dead: list[Instance] = []
        self.names = itertools.count()
        self.ids = itertools.count()
        for _ in range(2):
            self._spawn()

    def _spawn(self) -> None:
        inst = Instance(f"i{next(self.names)}", self.cfg, self.clock, self.dsn)
        self.live.append(inst)
        self._snapshot(inst)

    def _snapshot(self, inst: Instance) -> None:
        now = self.clock.monotonic()
        for account, qty in self.positions.items():
            held = (Position("SOLUSDT", "binance", qty, PRICE),) if qty else ()
            inst.gate.post(AccountState(account, RICH, held, RICH, RICH), now)

    # -- steps -------------------------------------------------------------------------------
    @precondition(lambda self: self.live)
    @rule(data=st.data(), quantity=st.integers(1, 50), account=st.sampled_from(["main", "tiny"]))
    def order(self, data, quantity: int, account: str) -> None:
        inst = data.draw(st.sampled_from(self.live))
        oid = f"o{next(self.ids)}"
        raw = {"order_id": oid, "account": account, "exchange": "binance", "strategy_id": "trend_v2",
               "symbol": "SOLUSDT", "side": "buy", "quantity": quantity / 10, "price": PRICE,
               "leverage": 1.0}  # fmt: skip
        valid = validate_order(raw, self.cfg)
        assert not isinstance(valid, str), valid
        result = inst.gate.decide(EvaluateOrder(valid, config=self.cfg), wait=5.0)
        assert result is not None and not isinstance(result, str)
        if result.decision != "block":
            inst.in_flight[oid] = (account, result.adjusted_quantity)

    @precondition(lambda self: any(i.in_flight for i in self.live))
    @rule(data=st.data(), part=st.sampled_from([0.5, 1.0]))
    def fill(self, data, part: float) -> None:
        inst = data.draw(st.sampled_from([i for i in self.live if i.in_flight]))
        oid = data.draw(st.sampled_from(sorted(inst.in_flight)))
        account, qty = inst.in_flight[oid]
        filled = round(qty * part, 1) or qty
        now = self.clock.monotonic()
        inst.gate.post(Fill(account, "binance", "SOLUSDT", "buy", filled, PRICE, oid), now)
        self.positions[account] += filled
        left = round(qty - filled, 10)
        if left > 0:
            inst.in_flight[oid] = (account, left)
        else:
            del inst.in_flight[oid]
            inst.gate.post(OrderOutcome(oid, "filled", qty, account), now)
        for each in self.live:  # the exchange's snapshot reaches every instance
            self._snapshot(each)

    @precondition(lambda self: any(i.in_flight for i in self.live))
    @rule(data=st.data())
    def cancel(self, data) -> None:
        inst = data.draw(st.sampled_from([i for i in self.live if i.in_flight]))
        oid = data.draw(st.sampled_from(sorted(inst.in_flight)))
        account, _ = inst.in_flight.pop(oid)
        inst.gate.post(OrderOutcome(oid, "cancelled", 0.0, account), self.clock.monotonic())

    @precondition(lambda self: any(qty > 0 for qty in self.positions.values()))
    @rule(account=st.sampled_from(["main", "tiny"]))
    def close_position(self, account: str) -> None:
        self.positions[account] = 0.0  # closed at the exchange (a reduction: no budget needed)
        for each in self.live:
            self._snapshot(each)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def lease_round(self, data) -> None:
        inst = data.draw(st.sampled_from(self.live))
        assert inst.keeper.round()

    @precondition(lambda self: len(self.live) > 1)
    @rule(data=st.data())
    def kill(self, data) -> None:
        inst = data.draw(st.sampled_from(self.live))
        self.live.remove(inst)
        self.dead.append(inst)
        inst.in_flight.clear()  # what it approved expires unheard (reservation_ttl_s <= lease_ttl_s)
        inst.store.close()

    @precondition(lambda self: self.dead)
    @rule()
    def dead_leases_lapse(self) -> None:
        conn = connect(self.dsn, 5.0, "test")
        names = [i.name for i in self.dead]
        conn.execute("UPDATE leases SET expires_at = clock_timestamp() - INTERVAL '1 second'"
                     " WHERE instance = ANY(%s)", (names,))  # fmt: skip
        conn.close()

    @precondition(lambda self: len(self.live) < 3)
    @rule()
    def new_instance(self) -> None:
        self._spawn()

    # -- the invariant ------------------------------------------------------------------------
    @invariant()
    def caps_hold_in_the_aggregate(self) -> None:
        if not hasattr(self, "live"):
            return
        in_flight = {"main": 0.0, "tiny": 0.0}
        for inst in self.live:
            for account, qty in inst.in_flight.values():
                in_flight[account] += qty * PRICE
        exchange = sum(self.positions.values()) * PRICE + sum(in_flight.values())
        account = self.positions["main"] * PRICE + in_flight["main"]
        assert exchange <= EXCHANGE_CAP + 1e-6, (exchange, self.positions, in_flight)
        assert account <= ACCOUNT_CAP + 1e-6, (account, self.positions, in_flight)
        # The gates' own books agree with the model: nothing in flight the model does not know.
        for inst in self.live:
            usage = inst.gate.budget_usage(5.0)
            assert usage is not None
            held = usage[("exchange", "binance")].reserved_units / UNITS_PER_USD
            model = sum(q * PRICE for _, q in inst.in_flight.values())
            assert abs(held - model) < 1e-3, (inst.name, held, model)

    def teardown(self) -> None:
        for inst in getattr(self, "live", []) + getattr(self, "dead", []):
            inst.store.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_leased_budgets_hold_every_cap_under_any_interleaving(migrated_dsn):
    Desk.dsn = migrated_dsn
    runner = Desk.TestCase
    runner.settings = settings(
        max_examples=20, stateful_step_count=35, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )  # fmt: skip
    runner().runTest()
