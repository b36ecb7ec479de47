"""Supervision: restarts with backoff, heartbeats, a gate killed under load, health logs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pykka
import pytest
from structlog.testing import capture_logs

import actors.risk_poller
from actors.messages import Poll
from supervisor import AccountSnapshot, Fill, RiskSupervisor
from supervisor.core.messages import RiskGateResult
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sim.simulator import UpstreamSimulator
from tests.actors.test_sources import advance, healthy, source_config
from tests.helpers import GateCrash, GateHold, make_config, order, signal

HEALTH_KEYS = {"actor", "alive", "restarts", "last_error", "state_age_s"}


@pytest.fixture
def sim(clock):
    with UpstreamSimulator(clock=clock) as s:
        yield s


def feed(sup: RiskSupervisor, equity: float) -> None:
    """Fresh ESS, Risk v3 (INFO) and a snapshot of account `main`."""
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", equity))


def wait_dead(ref: pykka.ActorRef) -> None:
    """A ping queued behind the fatal message fails once the actor is gone."""
    with pytest.raises(pykka.ActorDeadError):
        ref.proxy().ping().get(timeout=5)


def health_rows(sup: RiskSupervisor) -> dict[str, dict]:
    with capture_logs() as logs:
        sup.log_health()
    rows = {e["actor"]: e for e in logs if e["event"] == "actor_health"}
    stats = [e for e in logs if e["event"] == "gate_stats"]
    assert len(stats) == 1 and "decisions" in stats[0]
    for row in rows.values():
        assert set(row) >= HEALTH_KEYS
    return rows


def test_actors_start_in_dependency_order_and_stop_in_reverse(sim, clock, tmp_path):
    healthy(sim)
    with capture_logs() as logs, RiskSupervisor(source_config(sim, tmp_path / "KILL"), clock=clock):
        pass
    order_of = {name: [e["actor"] for e in logs if e["event"] == name] for name in ("actor_started", "actor_stopped")}
    # The journal first and last: it must hold every decision from the first to the last.
    assert order_of["actor_started"] == ["journal", "gate", "account_tracker", "risk_v3_poller", "ess_watcher"]
    assert order_of["actor_stopped"] == ["ess_watcher", "risk_v3_poller", "account_tracker", "gate", "journal"]


def test_actor_failing_in_a_handler_is_restarted_and_shows_in_health_log(sim, clock, tmp_path, monkeypatch):
    healthy(sim)
    with RiskSupervisor(source_config(sim, tmp_path / "KILL"), clock=clock) as sup:
        advance(sup, clock, 0)
        poller = sup.actor_ref("risk_v3_poller")

        def bug(data):
            raise RuntimeError("parser bug")

        with monkeypatch.context() as m:  # not monkeypatch.undo(): that would undo conftest's chdir too
            m.setattr(actors.risk_poller, "parse_risk_signal", bug)
            poller.tell(Poll())
            wait_dead(poller)
        assert health_rows(sup)["risk_v3_poller"]["alive"] is False
        with capture_logs() as logs:
            sup.check_actors()
        assert [e["actor"] for e in logs if e["event"] == "actor_restarted"] == ["risk_v3_poller"]
        row = health_rows(sup)["risk_v3_poller"]
        assert (row["alive"], row["restarts"]) == (True, 1)
        assert "RuntimeError: parser bug" in row["last_error"]
        assert sup.actor_ref("risk_v3_poller") is not poller
        assert sup.evaluate(order()).decision == "allow"


def test_restarts_back_off_exponentially_up_to_the_cap(clock):
    cfg = make_config(supervision={"check_interval_s": 1000.0, "backoff_initial_s": 0.5, "backoff_max_s": 4.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        delays = []
        for _ in range(5):
            tracker = sup.actor_ref("account_tracker")
            tracker.stop()
            with capture_logs() as logs:
                sup.check_actors()  # sees it dead; restarts now if no backoff is due
            died = [e for e in logs if e["event"] == "actor_died"]
            delays.append(died[0]["restart_in_s"])
            waited = 0.0
            while sup.actor_ref("account_tracker") is tracker:
                clock.advance(0.25)
                waited += 0.25
                sup.check_actors()
            assert waited == pytest.approx(delays[-1], abs=0.25)
        assert delays == [0.0, 0.5, 1.0, 2.0, 4.0]
        assert health_rows(sup)["account_tracker"]["restarts"] == 5


def test_unresponsive_actor_is_logged_and_replaced(clock):
    cfg = make_config(
        supervision={"heartbeat_timeout_s": 1.0, "check_interval_s": 1000.0},  # a loaded CI core starts actors slowly
        risk_v3={"timeout_s": 0.1},
        ess={"timeout_s": 0.1},
        accounts={"timeout_s": 0.1},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        held, release = threading.Event(), threading.Event()
        stuck = sup.gate_ref
        stuck.tell(GateHold(held, release, timeout_s=30))
        assert held.wait(5)
        try:
            with capture_logs() as logs:
                sup.check_actors()  # ping unanswered within 1 s
                sup.check_actors()  # restart (the first one is immediate)
            events = [e["event"] for e in logs if e.get("actor") == "gate"]
            assert events[:4] == ["actor_unresponsive", "actor_died", "actor_started", "actor_restarted"]
            assert sup.gate_ref is not stuck and sup.gate_ref.is_alive()
        finally:
            release.set()


def test_restarted_gate_is_refed_before_any_order_and_keeps_reservations(clock):
    cfg = make_config(gate={"max_orders_per_s": 1000})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, 10_000_000.0)
        assert sup.evaluate(order(quantity=300.0, order_id="A")).decision == "allow"  # 30k of the 50k cap
        old = sup.gate_ref
        old.tell(GateCrash())  # a bug: the gate dies
        wait_dead(old)
        r = sup.evaluate(order())
        assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)
        sup.check_actors()
        after = sup.evaluate(order(quantity=300.0, order_id="B"))
        # re-fed: not stale; the in-flight 30k is still reserved: scaled to the 20k left
        assert (after.decision, after.reason_code, after.adjusted_quantity) == (
            "scale_down",
            RC.ACCOUNT_EXPOSURE_LIMIT,
            200.0,
        )


def test_restarted_gate_with_nothing_to_refeed_blocks(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        sup.gate_ref.stop()
        sup.check_actors()
        assert sup.evaluate(order()).reason_code is RC.ESS_STATE_STALE


def test_gate_killed_while_eight_threads_evaluate(clock):
    cfg = make_config(gate={"max_orders_per_s": 100_000})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, 1e12)
        warmed = threading.Barrier(9)
        killed = threading.Event()
        errors: list[BaseException] = []

        def trader(n: int) -> list[tuple[bool, RiskGateResult]]:
            out = []
            try:
                i = after_kill = 0
                while after_kill < 30 and i < 1_000_000:  # keep going until 30 calls followed the kill
                    if i == 20:
                        warmed.wait(10)
                    started_after_kill = killed.is_set()  # the gate was confirmed dead before this call
                    r = sup.evaluate(order(quantity=0.1, order_id=f"t{n}-{i}"))
                    out.append((started_after_kill, r))
                    after_kill += started_after_kill
                    i += 1
            except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
                errors.append(exc)
            return out

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(trader, n) for n in range(8)]
            warmed.wait(10)
            gate = sup.gate_ref
            gate.tell(GateCrash())  # kills the gate
            wait_dead(gate)
            killed.set()
            results = [f.result(timeout=30) for f in futures]
        assert errors == []
        assert all(sum(k for k, _ in batch) == 30 for batch in results)
        after_kill = [r for batch in results for (k, r) in batch if k]
        assert len(after_kill) == 240 and all(r.reason_code is RC.GATE_UNAVAILABLE for r in after_kill)
        for batch in results:  # within a thread, once the gate is gone nothing is allowed
            seen_down = False
            for _, r in batch:
                seen_down = seen_down or r.reason_code is RC.GATE_UNAVAILABLE
                assert not (seen_down and r.decision != "block")
        sup.check_actors()  # restarted and re-fed
        assert sup.evaluate(order(quantity=0.1)).decision == "allow"


def test_health_log_every_interval_on_the_clock(clock):
    cfg = make_config(health={"interval_s": 10.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.evaluate(order())
        with capture_logs() as logs:
            clock.advance(9.9)
            assert [e for e in logs if e["event"] == "actor_health"] == []
            clock.advance(0.1)
        rows = [e for e in logs if e["event"] == "actor_health"]
        stats = [e for e in logs if e["event"] == "gate_stats"]
        assert [r["actor"] for r in rows] == ["journal", "gate", "account_tracker"]
        assert stats[0]["decisions"] == {"RISK_STATE_STALE": 1} and stats[0]["total"] == 1
        with capture_logs() as logs:
            clock.advance(10.0)
        assert next(e for e in logs if e["event"] == "gate_stats")["total"] == 0  # counts since the last one


def test_restarted_tracker_keeps_applying_fills_to_the_known_positions(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        feed(sup, 1_000_000.0)
        sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 2.0, 100.0))
        old = sup.actor_ref("account_tracker")
        old.stop()
        sup.check_actors()
        assert sup.actor_ref("account_tracker") is not old
        state = sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 1.0, 100.0))
        assert state is not None and [(p.symbol, p.quantity) for p in state.positions] == [("SOLUSDT", 3.0)]
