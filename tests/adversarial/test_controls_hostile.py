"""What a hostile probe of the emergency controls found, each closed and kept closed."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta

import pytest

from supervisor import AccountSnapshot, GuardedAdapter, GuardedExchange, OrderBlocked, Position, RiskSupervisor
from supervisor.config import ConfigError, parse_config
from supervisor.core.messages import EssSourceStatus, EssState
from supervisor.ops.controls import ControlError
from tests.helpers import config_dict, make_config, order, signal
from tests.supervisor.integrations.test_cancels import PaperAdapter, PaperExchange

LONG_SOL = (Position("SOLUSDT", "binance", 3.0, 100.0),)
REDUCE = {"side": "sell", "quantity": 3.0, "reduce_only": True}


def config(tmp_path, **sections):
    return make_config(state={"dir": str(tmp_path / "state")}, **sections)


def feed(sup: RiskSupervisor, halted: bool = True) -> None:
    sup.report_ess_active(halted, "drawdown", source="ess_http")
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, LONG_SOL))


def approved(sup: RiskSupervisor, ttl_s: float = 60.0) -> str:
    record = sup.propose_override("main", "flatten", ttl_s, by="alice")
    return sup.approve_override(record.id, by="bob").id


def test_a_revoke_that_cannot_be_saved_still_ends_the_override_in_the_gate(clock, tmp_path, monkeypatch):
    import supervisor.ops.control_files as control_files
    import supervisor.ops.controls as controls

    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        oid = approved(sup)
        assert sup.evaluate(order(**REDUCE)).reason_code == "OVERRIDE_APPLIED"

        def disk_full(path, body):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(controls, "write_atomically", disk_full)  # the halt file
        monkeypatch.setattr(control_files, "write_atomically", disk_full)  # the overrides file
        with pytest.raises(ControlError) as refused:
            sup.revoke_override(oid, by="alice")
        assert refused.value.status == 503 and "revoked in the running gate" in refused.value.detail
        assert sup.evaluate(order(**REDUCE)).reason_code == "ESS_HALT_ACTIVE"
        # A halt that cannot be saved still halts now, and says it was not saved.
        feed(sup, halted=False)
        with pytest.raises(ControlError, match="halted now") as refused:
            sup.halt("drill", by="alice")
        assert refused.value.status == 503
        assert sup.evaluate(order()).reason_code == "ESS_HALT_ACTIVE"


def test_a_resume_that_cannot_be_saved_leaves_the_halt_on(clock, tmp_path, monkeypatch):
    import supervisor.ops.control_files as control_files
    import supervisor.ops.controls as controls

    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        sup.halt("drill", by="alice")

        def disk_full(path, body):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(controls, "write_atomically", disk_full)  # the halt file
        monkeypatch.setattr(control_files, "write_atomically", disk_full)  # the overrides file
        with pytest.raises(ControlError, match="not resumed") as refused:
            sup.resume(by="bob")
        assert refused.value.status == 503
        assert sup.evaluate(order()).reason_code == "ESS_HALT_ACTIVE"
        with pytest.raises(ControlError, match=r"not approved|not proposed"):
            approved(sup)
        assert sup.overrides() == []


def test_a_wall_clock_set_back_never_revives_an_override_across_a_restart(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        approved(sup, ttl_s=60.0)
    clock.set(clock.now() - timedelta(hours=1))
    clock.advance(61.0)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(**REDUCE)).reason_code == "ESS_HALT_ACTIVE"
        assert [r.state for r in sup.overrides()] == ["expired"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: {**r, "approved_by": None},
        lambda r: {**r, "approved_by": "ALICE"},  # the proposer, by case
        lambda r: {**r, "expires_at": "2099-01-01T00:00:00Z"},  # decades
        lambda r: {**r, "ttl_s": 1e9},
        lambda r: {**r, "state": "ACTIVE"},
        lambda r: {**r, "expires_at": "garbage"},
        lambda r: {**r, "expires_at": 5},
        lambda r: {**r, "extra": 1},
    ],
)
def test_a_tampered_overrides_file_is_not_trusted_and_never_breaks_the_start(clock, tmp_path, tamper):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        approved(sup, ttl_s=600.0)
        sup.halt("still halted", by="alice")
    path = tmp_path / "state" / "overrides.json"
    rows = json.loads(path.read_text())
    path.write_text(json.dumps([tamper(rows[0])]))
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        out = sup.evaluate(order(**REDUCE))
        assert out.reason_code == "ESS_HALT_ACTIVE" and "still halted" in out.reason  # the operator halt holds
        assert sup.overrides() == []


def test_a_fifo_at_the_halt_file_halts_and_never_hangs_the_start(clock, tmp_path):
    (tmp_path / "state").mkdir()
    os.mkfifo(tmp_path / "state" / "operator_halt.json")
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        assert sup.evaluate(order()).reason_code == "ESS_HALT_ACTIVE"


def test_an_override_never_passes_an_unreadable_ess_source(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        approved(sup)
        sup.report_ess_state(EssState.combine((EssSourceStatus("ess_http", None, "HTTP 500"),)))
        assert sup.evaluate(order(**REDUCE)).reason_code == "ESS_STATE_STALE"
        sup.halt("and halted", by="alice")  # halted outranks unknown in the combined state...
        assert sup.evaluate(order(**REDUCE)).reason_code == "ESS_HALT_ACTIVE"  # ...but not for an override


def test_one_active_override_per_account(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        approved(sup)
        second = sup.propose_override("main", "again", 60.0, by="alice")
        with pytest.raises(ControlError, match="already has active override") as refused:
            sup.approve_override(second.id, by="bob")
        assert refused.value.status == 409


def test_operator_names_differing_only_by_case_are_one_person():
    data = config_dict(api={"operators": {"alice": {"token_sha256": "a" * 64}, "Alice": {"token_sha256": "b" * 64}}})
    with pytest.raises(ConfigError, match="same name as operator 'alice' but for case"):
        parse_config(data)


def test_a_hanging_cancel_never_keeps_another_client_from_cancelling(clock, tmp_path):
    release = threading.Event()

    class Hanging(PaperExchange):
        def cancel_order(self, id, symbol=None, params=None):  # noqa: A002
            release.wait(30)
            return super().cancel_order(id, symbol, params)

    cfg = config(tmp_path, gate={"max_orders_per_s": 10_000}, ess={"cancel_open_orders_on_halt": True})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        sup.report_account_snapshot(AccountSnapshot("main", 1_000_000.0))
        hanging, paper = Hanging(), PaperExchange()
        for client in (hanging, paper):
            GuardedExchange(client, sup, account="main", exchange="binance", strategy_id="trend_v2").create_order(
                "SOL/USDT", "limit", "buy", 1.0, 100.0
            )
        cancelled = threading.Event()
        original = paper.cancel_order

        def spy(*args, **kwargs):
            out = original(*args, **kwargs)
            cancelled.set()
            return out

        paper.cancel_order = spy  # type: ignore[method-assign]
        sup.report_ess_active(True, "halt", source="ess_http")
        try:
            assert cancelled.wait(10), "one client's hanging cancel kept the other from cancelling"
            assert paper.resting == {} and len(hanging.resting) == 1
        finally:
            release.set()
        assert sup.settle_halt_listeners(10)


def test_a_pending_cancel_keeps_the_reservation_and_cancel_all_ends_only_what_it_lists(clock, tmp_path):
    class Pending(PaperExchange):
        def cancel_order(self, id, symbol=None, params=None):  # noqa: A002
            return {**self.resting[id], "status": "open"}  # accepted, not done yet

        def cancel_all_orders(self, symbol=None, params=None):
            first = sorted(self.resting)[0]
            return [{**self.resting.pop(first), "status": "canceled"}]

    with RiskSupervisor(config(tmp_path, gate={"max_orders_per_s": 10_000}), clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        sup.report_account_snapshot(AccountSnapshot("main", 1_000_000.0))
        ex = GuardedExchange(Pending(), sup, account="main", exchange="binance", strategy_id="trend_v2")
        a = ex.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
        ex.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0)
        ex.cancel_order(a["id"], "SOL/USDT")
        assert sup.health()["gate"]["reservations"] == 2  # still working at the exchange
        ex.cancel_all_orders("SOL/USDT")
        assert sup.health()["gate"]["reservations"] == 1  # only the one the answer lists ended


def test_reduce_only_is_sent_to_the_exchange_as_judged(clock, tmp_path):
    class Recording(PaperExchange):
        def create_order(self, symbol, type, side, amount, price=None, params=None):  # noqa: A002
            self.params = dict(params or {})
            return super().create_order(symbol, type, side, amount, price, params)

    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup, halted=False)
        ex_client = Recording()
        ex = GuardedExchange(ex_client, sup, account="main", exchange="binance", strategy_id="trend_v2")
        ex.create_order("SOL/USDT", "limit", "sell", 1.0, 100.0, reduce_only=True)
        assert ex_client.params == {"reduceOnly": True}
        with pytest.raises(OrderBlocked, match="disagree"):
            ex.create_order("SOL/USDT", "limit", "sell", 1.0, 100.0, {"reduceOnly": False}, reduce_only=True)

        class Plain(PaperAdapter):  # the adapter protocol without reduce_only: the order fails, never opens
            pass

        ad = GuardedAdapter(Plain(), sup, account="main", exchange="binance", strategy_id="trend_v2")
        with pytest.raises(TypeError):
            ad.submit_order("SOL/USDT", "sell", 1.0, 100.0, reduce_only=True)
        assert sup.health()["gate"]["reservations"] == 1  # the failed one was released


def test_a_snapshot_taken_before_a_fill_never_undoes_it(clock, tmp_path):
    from supervisor import Fill

    with RiskSupervisor(config(tmp_path, gate={"max_orders_per_s": 10_000}), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        approved(sup, ttl_s=600.0)
        taken = clock.now()
        clock.advance(1.0)
        out = sup.evaluate(order(**REDUCE, order_id="flat-1"))
        assert out.reason_code == "OVERRIDE_APPLIED"
        sup.report_fill(Fill("main", "binance", "SOLUSDT", "sell", 3.0, 100.0, "flat-1"))
        # The exchange's snapshot from before the fill arrives late: it still shows +3 SOL.
        late = AccountSnapshot("main", 10_000.0, LONG_SOL, timestamp=taken)
        assert sup.report_account_snapshot(late) is None  # not applied
        again = sup.evaluate(order(**REDUCE, order_id="flat-2"))
        assert again.decision == "block"  # no position left to reduce: it would open a short
