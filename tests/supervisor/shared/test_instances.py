"""Two riskgate instances in this process on one real PostgreSQL: a shared cap holds in
the aggregate, a halt through one blocks the other, an unconfirmed shared state blocks
opening orders, every instance's journal is read through either, and the instances are
listed with their leases."""

from __future__ import annotations

import dataclasses

import pytest

from supervisor.core.messages import AccountSnapshot, OrderOutcome
from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from tests.helpers import feed, make_config, order

RICH = 10_000_000.0


def instance_config(dsn: str, name: str, tmp_path, **store):
    return make_config(
        store={"backend": "postgresql", "dsn": dsn, **store},
        instance={"name": name},
        gate={"max_orders_per_s": 1000},
        state={"dir": str(tmp_path / name)},
        accounts={"main": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 1_000_000.0}},
        exchanges={"binance": {"max_notional_usd": 1_000.0}, "bybit": {}},
    )


def started(dsn: str, tmp_path, clock, *names: str, window_s: float | None = None, **store) -> list[RiskSupervisor]:
    """Instances of one desk, started (the caller stops them); `window_s`: their
    gate.duplicate_window_s, `store`: [store] keys."""
    out = []
    for name in names:
        cfg = instance_config(dsn, name, tmp_path, **store)
        if window_s is not None:
            cfg = dataclasses.replace(cfg, gate=dataclasses.replace(cfg.gate, duplicate_window_s=window_s))
        sup = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
        sup.start()
        out.append(sup)
    return out


@pytest.fixture
def pair(migrated_dsn, tmp_path, clock):
    both = started(migrated_dsn, tmp_path, clock, "a", "b")
    yield both
    for sup in both:
        sup.stop()


def fed(sup):
    feed(sup, equity=RICH)
    return sup


def test_a_shared_exchange_cap_holds_over_both_instances(pair):
    a, b = (fed(s) for s in pair)
    approved = 0.0
    for round_no in range(6):
        for sup in (a, b):
            assert sup.shared.keeper.round()
            for n in range(4):
                r = sup.evaluate(order(order_id=f"{sup.config.instance.name}-{round_no}-{n}", quantity=1.5))
                assert r.reason_code in (RC.ALL_CHECKS_PASSED, RC.BUDGET_UNAVAILABLE), r.reason
                if r.decision != "block":
                    approved += r.adjusted_quantity * 100.0
    assert approved <= 1_000.0 + 1e-6  # 1,000 USD cap over both instances, in flight
    assert approved >= 500.0  # and the budget moved to where the orders were


def test_budget_returned_by_one_instance_is_used_by_the_other(pair):
    a, b = (fed(s) for s in pair)
    a.shared.keeper.round()
    b.shared.keeper.round()  # b's slice: 10 % of the cap
    for n in range(10):  # a takes all it can get
        a.evaluate(order(order_id=f"a{n}", quantity=1.0))
        a.shared.keeper.round()
    b.shared.keeper.round()
    assert b.evaluate(order(order_id="b-slice", quantity=1.0)).decision == "allow"
    b.shared.keeper.round()
    assert b.evaluate(order(order_id="b0", quantity=1.0)).reason_code is RC.BUDGET_UNAVAILABLE
    for n in range(10):  # a's orders end unfilled: its in-flight notional is released
        a.report_order_outcome(OrderOutcome(account="main", order_id=f"a{n}", status="cancelled", filled_quantity=0.0))
    a.shared.keeper.round()  # a is idle now: it keeps only its slice
    b.shared.keeper.round()
    b.shared.keeper.round()
    assert b.evaluate(order(order_id="b1", quantity=1.0)).decision == "allow"


def test_a_halt_through_one_instance_blocks_the_other(pair):
    a, b = (fed(s) for s in pair)
    for sup in pair:
        sup.shared.keeper.round()
    assert b.evaluate(order(order_id="before", quantity=0.1)).decision == "allow"
    a.halt("venue outage", by="alice")
    assert a.evaluate(order(order_id="a-after", quantity=0.1)).reason_code is RC.ESS_HALT_ACTIVE
    b.shared.keeper.round()  # what LISTEN or the next poll triggers
    r = b.evaluate(order(order_id="b-after", quantity=0.1))
    assert r.reason_code is RC.ESS_HALT_ACTIVE and "alice" in r.reason
    assert b.state()["operator_halt"]["by"] == "alice"
    b.resume(by="bob")  # a resume through the other instance lifts it everywhere
    a.shared.keeper.round()
    assert a.evaluate(order(order_id="a-resumed", quantity=0.1)).decision == "allow"


def test_unconfirmed_shared_state_blocks_opening_orders_only(pair, clock, migrated_dsn):
    import psycopg

    a, _ = (fed(s) for s in pair)
    a.shared.keeper.round()
    assert a.evaluate(order(order_id="fresh", quantity=0.1)).decision == "allow"
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:  # a's name taken over: its rounds fail
        conn.execute("UPDATE instances SET run = 'someone else' WHERE name = 'a'")
    assert not a.shared.keeper.round()
    clock.advance(a.config.store.max_age_s + 0.5)
    fed(a)
    r = a.evaluate(order(order_id="stale", quantity=0.1))
    assert (r.decision, r.reason_code) == ("block", RC.SHARED_STATE_STALE)
    state = a.state()
    assert not state["ready"] and any(m.startswith("store:") for m in state["not_ready"])
    assert state["banner"]["state"] == "FAIL-CLOSED"


def test_every_instances_journal_is_read_through_either(pair, capsys):
    from supervisor.cli_shared import shared_journal
    from supervisor.journal import query
    from supervisor.journal.store import Query

    a, _b = (fed(s) for s in pair)
    for sup in pair:
        sup.shared.keeper.round()
        sup.evaluate(order(order_id=f"j-{sup.config.instance.name}", quantity=0.1))
        sup.flush_journal()
        sup.shared.shipper.ship()
    reader = shared_journal(a.config)()
    try:
        rows = reader.decisions(Query(order_id="j-b"))
    finally:
        reader.close()
    assert [(r["instance"], r["decision"]) for r in rows] == [("b", "allow")]
    capsys.readouterr()
    assert query.explain(shared_journal(a.config), "j-b", "table") == 1
    assert "by instance b" in capsys.readouterr().out


def test_instances_are_listed_with_their_leases(pair):
    a, b = (fed(s) for s in pair)
    for sup in (a, b, a):
        sup.shared.keeper.round()
    doc = a.state()["store"]
    assert doc["confirmed"] and doc["instance"] == "a"
    rows = {row["name"]: row for row in doc["instances"]}
    assert set(rows) == {"a", "b"}
    assert rows["b"]["state"] == "ready" and "exchange:binance" in rows["b"]["leases_usd"]


def test_a_second_process_with_the_same_name_refuses_to_start(migrated_dsn, tmp_path, clock, pair):
    from supervisor.shared.db import SharedStoreError

    twin = RiskSupervisor(instance_config(migrated_dsn, "a", tmp_path / "twin"), clock=clock, poll_upstreams=False)
    with pytest.raises(SharedStoreError, match="instance name 'a' is in use"):
        twin.start()


def test_a_stopped_instance_returns_its_leases_but_what_is_in_flight(pair):
    # Found by a probe: a stop that returned everything let another instance spend budget that
    # the stopped one's orders, still live at the exchange, held (a rolling restart: 1,900 on 1,000).
    a, b = (fed(s) for s in pair)
    a.shared.keeper.round()
    for n in range(5):
        a.evaluate(order(order_id=f"a{n}", quantity=1.0))
        a.shared.keeper.round()
    a.stop()
    b.shared.keeper.round()
    rows = {row["name"]: row for row in b.state()["store"]["instances"]}
    assert rows["a"]["state"] == "stopped"
    assert rows["a"]["leases_usd"] == {"exchange:binance": 500.0, "account:main": 500.0}  # its 5 orders in flight


def test_account_snapshot_positions_count_against_the_lease(pair):
    a, _ = (fed(s) for s in pair)
    a.shared.keeper.round()
    from supervisor.core.messages import Position

    # Positions of 900 USD appear on the exchange: at most 100 USD is left of the 1,000 cap.
    a.report_account_snapshot(AccountSnapshot("main", RICH, (Position("SOLUSDT", "binance", 9.0, 100.0),)))
    a.shared.keeper.round()
    r = a.evaluate(order(order_id="big", quantity=5.0))
    assert r.decision != "allow" and r.adjusted_quantity <= 1.0 + 1e-9


def test_metrics_show_the_instances_and_their_leases(pair):
    a, b = (fed(s) for s in pair)
    for sup in (a, b, a):
        sup.shared.keeper.round()
    text = a.metrics.exposition().decode()
    assert 'risk_gate_instances{state="ready"} 2.0' in text
    assert 'risk_gate_lease_usd{cap="exchange:binance",instance="b"}' in text
    assert 'risk_gate_source_up{source="store"} 1.0' in text


def test_a_cap_beyond_what_the_database_holds_counts_as_its_largest(migrated_dsn, tmp_path, clock):
    # Found by the benchmark: a cap of 1e15 USD is 1e21 micro-USD, beyond BIGINT: every round
    # failed (closed, but for good). Now it counts as MAX_UNITS: stricter, never looser.
    cfg = make_config(
        store={"backend": "postgresql", "dsn": migrated_dsn},
        instance={"name": "huge"},
        state={"dir": str(tmp_path / "huge")},
        exchanges={"binance": {"max_notional_usd": 1e15}, "bybit": {}},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        fed(sup)
        assert sup.shared.keeper.round(), sup.shared.keeper.status().error
        assert sup.evaluate(order(order_id="h1", quantity=1.0)).decision == "allow"


def test_an_override_proposed_through_one_instance_is_approved_through_the_other(pair):
    from supervisor.core.messages import Position
    from supervisor.ops.controls import ControlError

    a, b = (fed(s) for s in pair)
    for sup in pair:
        sup.report_account_snapshot(AccountSnapshot("main", RICH, (Position("SOLUSDT", "binance", 2.0, 100.0),)))
        sup.shared.keeper.round()
    a.halt("venue incident", by="alice")
    b.shared.keeper.round()
    flatten = {"side": "sell", "reduce_only": True, "quantity": 1.0}
    assert b.evaluate(order(order_id="f0", **flatten)).reason_code is RC.ESS_HALT_ACTIVE
    assert a.evaluate(order(order_id="f0a", **flatten)).reason_code is RC.ESS_HALT_ACTIVE
    for sup in (b, a):  # each asks for the part of the position it wants to close (1 of 2 SOL)
        sup.shared.keeper.round()
    proposal = a.propose_override("main", "flatten during the incident", 60.0, by="alice")
    with pytest.raises(ControlError, match="another operator"):
        b.approve_override(proposal.id, by="alice")  # the same person, through another instance
    approved = b.approve_override(proposal.id, by="bob")  # b never saw a round since the proposal
    assert approved.state == "active"
    assert b.evaluate(order(order_id="f1", **flatten)).reason_code is RC.OVERRIDE_APPLIED
    a.shared.keeper.round()  # a takes up the approval made through b
    assert a.evaluate(order(order_id="f2", **flatten)).reason_code is RC.OVERRIDE_APPLIED
    second = a.propose_override("main", "again", 60.0, by="carol")
    with pytest.raises(ControlError, match=r"already has (a running|active) override"):
        b.approve_override(second.id, by="dave")
    a.revoke_override(proposal.id, by="alice")
    b.shared.keeper.round()  # revoked through a: ended at b's gate too
    assert b.evaluate(order(order_id="f3", **flatten)).reason_code is RC.ESS_HALT_ACTIVE
    with pytest.raises(ControlError) as conflict:
        b.approve_override(proposal.id, by="bob")
    assert conflict.value.status == 409


def test_an_order_id_approved_through_one_instance_is_a_duplicate_through_the_other(migrated_dsn, tmp_path, clock):
    both = [fed(sup) for sup in started(migrated_dsn, tmp_path, clock, "a", "b", window_s=60.0)]
    a, b = both
    try:
        for sup in (a, b):
            sup.shared.keeper.round()
        assert a.evaluate(order(order_id="dup-1", quantity=0.1)).decision == "allow"
        a.shared.keeper.round()  # a's approved ids go to the store
        b.shared.keeper.round()  # b learns of them
        r = b.evaluate(order(order_id="dup-1", quantity=0.1))  # the same id replayed through b
        assert r.reason_code is RC.DUPLICATE_ORDER, r.reason
        assert b.evaluate(order(order_id="dup-2", quantity=0.1)).decision == "allow"
        b.shared.keeper.round()
        a.shared.keeper.round()
        assert a.evaluate(order(order_id="dup-2", quantity=0.1)).reason_code is RC.DUPLICATE_ORDER
    finally:
        for sup in both:
            sup.stop()
