"""Issue 22, item 1: a client's report (a fill, an outcome) killed the gate.

`filled_quantity: 1e300` for an order in flight, or a fill of 1e300 at 1e-300,
raised OverflowError in the gate's arithmetic; the reservation was carried into
the restarted gate, so the same report killed each new gate again. Reports are
now bounded before they reach the gate, the gate's arithmetic on booked values
never raises, and a message the gate cannot handle is refused and journaled.
"""

from __future__ import annotations

import json

import pytest

from actors.messages import Poll
from supervisor import Fill, OrderOutcome
from supervisor.core.gate_state import GateState, Reservation
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.conftest import journal_events
from tests.helpers import feed, order

RICH = 10_000_000.0


def post(http, path, body):
    return http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def gate_restarts(sup) -> int:
    return sup.health()["gate"]["restarts"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/outcomes", {"order_id": "o-1", "status": "filled", "filled_quantity": 1e300, "account": "main"}),
        ("/v1/outcomes", {"order_id": "o-1", "status": "cancelled", "filled_quantity": 1e300, "account": "main"}),
        (
            "/v1/fills",
            {"account": "main", "exchange": "binance", "symbol": "SOLUSDT", "side": "buy", "quantity": 1e300,
             "price": 1e-300, "order_id": "o-1"},
        ),
    ],
)  # fmt: skip
def test_an_absurd_report_for_an_order_in_flight_is_refused_and_the_gate_lives(sup, http, path, body):
    feed(sup, equity=RICH)
    assert sup.evaluate(order(order_id="o-1")).decision == "allow"
    for _ in range(5):
        r = post(http, path, body)
        assert r.status_code == 422, r.text
        assert "quantity" in r.json()["detail"] or "price" in r.json()["detail"]
    nxt = sup.evaluate(order(order_id="o-2"))
    assert nxt.decision == "allow", nxt.reason
    assert gate_restarts(sup) == 0
    assert sup.health()["gate"]["reservations"] == 2  # o-1 still held: nothing was released by the junk


def test_the_gates_arithmetic_on_a_booked_order_never_raises():
    st = GateState()
    st.reserve(Reservation("o", "main", "binance", ("BTCUSDT", "binance"), 65_000.0, True, 30.0, price=65_000.0,
                           quantity=1.0))  # fmt: skip
    st.fill("main", "o", 1e300)  # more than was approved: the reservation is used up, no more
    assert st.reserved_usd("main") == 0.0
    st.reserve(Reservation("p", "main", "binance", ("BTCUSDT", "binance"), 65_000.0, True, 30.0, price=65_000.0,
                           quantity=1.0))  # fmt: skip
    held = st.ended("main", "p", 1e300, now=1.0, ttl_s=30.0)  # "filled 1e300", none reported: all stays held
    assert held is not None and st.reserved_usd("main") == 65_000.0
    assert st.exchange_in_use("binance") == 65_000.0


def test_a_fill_or_outcome_told_straight_to_the_gate_cannot_kill_it(sup_plain):
    """Past every validation (an in-process caller's own message): the gate still lives."""
    sup = sup_plain
    feed(sup, equity=RICH)
    assert sup.evaluate(order(order_id="o-1", symbol="BTCUSDT", price=65_000.0, quantity=0.01)).decision == "allow"
    gate = sup.gate_ref
    gate.tell(Fill("main", "binance", "BTCUSDT", "buy", 1e300, 1e300, "o-1"))
    gate.tell(OrderOutcome("o-1", "filled", 1e308, account="main"))
    gate.tell(OrderOutcome("o-1", "cancelled", float("inf"), account="main"))
    assert sup.evaluate(order(order_id="o-2")).decision == "allow"
    assert gate_restarts(sup) == 0


def test_a_message_the_gate_cannot_handle_is_refused_and_journaled_not_a_crash_loop(sup_plain, monkeypatch):
    sup = sup_plain
    feed(sup, equity=RICH)
    assert sup.evaluate(order(order_id="o-1")).decision == "allow"

    def broken(self, account, order_id, quantity):
        raise ArithmeticError("a bug not yet found")

    monkeypatch.setattr(GateState, "fill", broken)
    for _ in range(3):
        sup.gate_ref.tell(Fill("main", "binance", "SOLUSDT", "buy", 1.0, 100.0, "o-1"))
    sup.gate_ref.ask(Poll(), timeout=5)  # after the three in the actor's mailbox: each was handled
    assert sup.evaluate(order(order_id="o-2")).decision == "allow"
    assert gate_restarts(sup) == 0
    refused = journal_events(sup, "gate_message_refused")
    assert len(refused) == 3
    assert refused[0]["detail"]["message_type"] == "Fill"
    assert "ArithmeticError" in refused[0]["detail"]["error"]


def test_the_outcomes_endpoint_bounds_filled_quantity_like_an_order(sup, http):
    feed(sup)
    for bad in (1e300, -1.0, "1", True, float("nan")):
        body = {"order_id": "x", "status": "filled", "filled_quantity": bad, "account": "main"}
        r = http.post("/v1/outcomes", content=json.dumps(body, allow_nan=True),
                      headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422, (bad, r.text)
        assert "filled_quantity" in r.json()["detail"]
    assert sup.evaluate(order()).reason_code is RC.ALL_CHECKS_PASSED


# -- item 10: the journal's decisions on a damaged file ----------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_decisions_on_an_unreadable_journal_answer_503_with_the_cause(sup, http, damage):
    from pathlib import Path

    feed(sup)
    sup.evaluate(order())
    sup.flush_journal()
    path = Path(sup.config.state.dir) / "journal.sqlite"
    for side in ("-wal", "-shm"):  # what the writer has not checkpointed is lost with them
        Path(f"{path}{side}").unlink(missing_ok=True)
    if damage == "truncated":
        with path.open("r+b") as f:
            f.truncate(300)
    else:
        path.write_bytes(b"this is not a database " * 100)
    r = http.get("/v1/decisions")
    assert r.status_code == 503, r.text
    assert "journal" in r.json()["detail"] and "Traceback" not in r.text


# -- symbols are read strictly -------------------------------------------------------------------


@pytest.mark.parametrize(
    "symbol",
    ["BTC/USDT:FOO", "BTC/US/DT", "BTC/USDT:USDT-251226", "/BTCUSDT", "BTC/", "BTC//USDT", "B TC/USDT",
     "BTC/USDT:", "BTC/USDT:USDT:USDT", "BTC/USD:BTC", "\uff22TC/USDT"],
)  # fmt: skip
def test_a_symbol_not_of_the_configured_form_is_invalid(sup_plain, symbol):
    feed(sup_plain, equity=RICH)
    r = sup_plain.evaluate(order(symbol=symbol, price=65_000.0, quantity=0.01))
    assert r.reason_code is RC.INVALID_ORDER and "not configured" in r.reason


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC/USDT", "BTC/USDT:USDT"])
def test_the_unified_forms_of_a_configured_symbol_still_read(sup_plain, symbol):
    feed(sup_plain, equity=RICH)
    assert sup_plain.evaluate(order(symbol=symbol, price=65_000.0, quantity=0.01)).allowed


@pytest.mark.parametrize(
    "sql",
    ["UPDATE decisions SET ts_us = 'zzz'", "UPDATE decisions SET ts_us = 9223372036854775807",
     "UPDATE decisions SET signal_ts_us = -9223372036854775807"],
)  # fmt: skip
def test_decisions_with_a_damaged_row_answer_it_without_its_time_not_a_500(sup, http, sql):
    import sqlite3
    from pathlib import Path

    feed(sup)
    sup.evaluate(order(order_id="d-1"))
    sup.flush_journal()
    db = sqlite3.connect(Path(sup.config.state.dir) / "journal.sqlite")
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()
    r = http.get("/v1/decisions")
    assert r.status_code == 200, r.text
    [row] = [d for d in r.json() if d["order_id"] == "d-1"]
    assert row["time"] is None or row["signal_time"] is None
