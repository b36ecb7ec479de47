"""Alerts reach a real webhook receiver on loopback: once per episode, resolved after recovery, in both
formats, retried with backoff (FakeClock), and a hanging webhook holds up no other; all journaled."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.alerts.webhooks import backoff_s
from supervisor.clock import FakeClock
from supervisor.config import ConfigError, load_config
from supervisor.journal.store import JOURNAL_NAME, JournalReader
from tests.helpers import make_config, signal
from tests.supervisor.ops.webhook_receiver import Receiver


def alert_config(hooks: dict[str, dict], **alerts):
    return make_config(alerts={"enabled": True, "webhooks": hooks, **alerts})


def feed(sup: RiskSupervisor, ess: bool = False) -> None:
    sup.report_ess_active(ess, "desk halt" if ess else "")
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, 10_000.0))


def step(sup: RiskSupervisor, clock: FakeClock, ess: bool = False, seconds: float = 1.0) -> list[str]:
    """Fresh state, one alerts tick; the keys firing after it."""
    feed(sup, ess)
    clock.advance(seconds)
    assert sup.alerting is not None
    return sup.alerting.settle()


def journal_events(sup: RiskSupervisor, prefix: str = "alert_") -> list[dict]:
    sup.flush_journal()
    reader = JournalReader(Path(sup.config.state.dir) / JOURNAL_NAME)
    try:
        rows = reader.events(limit=1000)
    finally:
        reader.close()
    return [r for r in reversed(rows) if r["kind"].startswith(prefix)]


def test_one_alert_per_episode_and_a_resolved_one_in_both_formats_and_journaled(clock):
    with Receiver() as plain, Receiver() as slack:
        hooks = {"plain": {"url": plain.url}, "chat": {"url": slack.url, "format": "slack"}}
        with RiskSupervisor(alert_config(hooks), clock=clock, poll_upstreams=False) as sup:
            assert step(sup, clock) == []
            for _ in range(4):  # the halt lasts four ticks: one alert
                assert step(sup, clock, ess=True) == ["halt"]
            assert plain.wait_for(lambda r: len(r.bodies) == 1)
            for _ in range(3):
                assert step(sup, clock) == []
            assert plain.wait_for(lambda r: len(r.bodies) == 2)
            assert slack.wait_for(lambda r: len(r.bodies) == 2)
            step(sup, clock)
            assert sup.alerting is not None and sup.alerting.wait_delivered()
            events = journal_events(sup)
        assert [(b["key"], b["state"]) for b in plain.bodies] == [("halt", "firing"), ("halt", "resolved")]
        firing, resolved = plain.bodies
        assert set(firing) == {
            "service", "instance", "key", "rule", "state", "severity", "summary", "detail", "started_at", "at",
            "resolved_at",
        }  # fmt: skip
        assert (firing["service"], firing["rule"], firing["severity"]) == ("riskgate", "halt", "critical")
        assert firing["detail"] == {"halted_by": "manual", "reason": "manual: desk halt"}
        assert firing["resolved_at"] is None and firing["started_at"] == firing["at"] == "2026-01-05T12:00:02Z"
        assert resolved["started_at"] == firing["started_at"]
        assert resolved["at"] == resolved["resolved_at"] == "2026-01-05T12:00:06Z"
        assert [set(b) for b in slack.bodies] == [{"text"}, {"text"}]
        assert slack.bodies[0]["text"].startswith(":rotating_light: FIRING [critical]")
        assert "halted by ESS (manual): desk halt (halt, since 12:00:02 UTC)" in slack.bodies[0]["text"]
        assert slack.bodies[0]["text"].count("manual") == 1  # the cause once, the time of day not raw ISO
        assert firing["summary"] == "trading halted by ESS (manual): desk halt"
        assert resolved["summary"] == "trading no longer halted by ESS (manual)"  # not the failure's words again
        assert (
            slack.bodies[1]["text"].startswith(":white_check_mark: RESOLVED")
            and "no longer halted by ESS (manual)" in slack.bodies[1]["text"]
            and "desk halt" not in slack.bodies[1]["text"]
            and "lasted 4.0 s" in slack.bodies[1]["text"]
        )
    kinds = [(e["kind"], e["detail"]) for e in events]
    assert [k for k, _ in kinds if k in ("alert_firing", "alert_resolved")] == ["alert_firing", "alert_resolved"]
    assert all('"key": "halt"' in d for k, d in kinds if k in ("alert_firing", "alert_resolved"))
    assert sum(k == "alert_delivered" for k, _ in kinds) == 4  # two messages to two webhooks


def test_a_webhook_answering_500_is_retried_after_its_backoff_then_delivered_once(clock):
    with Receiver(statuses=[500, 500]) as hook:
        with RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup:
            assert sup.alerting is not None
            sender = sup.alerting.senders[0]
            step(sup, clock)
            step(sup, clock, ess=True)
            assert sender.wait_attempts(1, timeout=10)  # 500: retry in 1 s
            step(sup, clock, ess=True, seconds=0.5)
            step(sup, clock, ess=True, seconds=0.5)  # 1 s later: the first backoff has passed
            assert sender.wait_attempts(2, timeout=10)  # 500 again: retry in 2 s
            step(sup, clock, ess=True, seconds=1.0)
            assert sender.wait_attempts(3, timeout=0.2) is False  # not due yet: nothing sent
            step(sup, clock, ess=True, seconds=1.0)
            assert sender.wait_attempts(3, timeout=10)
            assert hook.wait_for(lambda r: len(r.delivered()) == 1)
            assert sup.alerting is not None and sup.alerting.wait_delivered()
            events = journal_events(sup, "alert_deliver")
        assert [b["state"] for b in hook.delivered()] == ["firing"]
        assert hook.requests == 3
    kinds = [e["kind"] for e in events]
    assert kinds == ["alert_delivery_failed", "alert_delivery_recovered", "alert_delivered"]  # one failure report


def test_backoff_doubles_from_one_second_up_to_its_cap():
    assert [backoff_s(n, 60.0) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_s(10_000, 5.0) == 5.0


def test_a_hanging_webhook_holds_up_no_other(clock):
    with Receiver(hang=True) as stuck, Receiver() as ok:
        hooks = {"stuck": {"url": stuck.url, "timeout_s": 30.0}, "ok": {"url": ok.url}}
        with RiskSupervisor(alert_config(hooks), clock=clock, poll_upstreams=False) as sup:
            step(sup, clock)
            step(sup, clock, ess=True)
            assert stuck.wait_for(lambda r: r.requests == 1)  # it has the firing, and does not answer
            assert ok.wait_for(lambda r: len(r.bodies) == 1, timeout=5)
            step(sup, clock)
            assert ok.wait_for(lambda r: len(r.bodies) == 2, timeout=5)
            assert stuck.requests == 1  # still waiting for its answer
            stuck.close()  # the stop need not wait for it
        assert [b["state"] for b in ok.bodies] == ["firing", "resolved"]


def test_alerts_disabled_start_nothing(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        assert sup.alerting is None


def test_alerts_are_restart_only_on_reload(clock, tmp_path):
    shipped = (Path(__file__).resolve().parents[3] / "config.toml").read_text()
    path = tmp_path / "config.toml"
    path.write_text(shipped)
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False) as sup:
        head, alerts = shipped.split("\n[alerts]\n", 1)
        assert alerts.startswith("#") and "\nenabled = false\n" in alerts
        path.write_text(head + "\n[alerts]\n" + alerts.replace("\nenabled = false\n", "\nenabled = true\n", 1))
        with pytest.raises(ConfigError, match=r"alerts\.enabled: changed; restart required"):
            sup.reload(path)


def test_a_full_outbox_drops_new_messages_and_says_so_once(clock):
    from supervisor.alerts.rules import Alert, Transition
    from supervisor.alerts.webhooks import WebhookSender
    from supervisor.config import WebhookConfig

    reports: list[tuple[str, str, dict]] = []
    with Receiver(hang=True) as stuck:
        sender = WebhookSender(
            WebhookConfig("stuck", stuck.url, timeout_s=30.0),
            clock,
            lambda kind, hook, **detail: reports.append((kind, hook, detail)),
            "test",
            max_outbox=2,
        ).start()
        try:
            alert = Alert("halt", "halt", "critical", "halted")
            accepted = [
                sender.offer(Transition("firing" if i % 2 == 0 else "resolved", alert, clock.now(), clock.now()))
                for i in range(5)
            ]
            assert accepted == [True, True, False, False, False]
            assert sender.dropped == 3 and len(sender) == 2
            assert [(k, h) for k, h, _ in reports] == [("alert_dropped", "stuck")]
        finally:
            stuck.close()
            sender.stop()


def test_reduce_only_fires_when_it_begins_and_resolves_when_it_ends(clock):
    """No ESS source halts (the halt rule sees nothing), yet orders that grow a position block."""
    with (
        Receiver() as hook,
        RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup,
    ):
        assert step(sup, clock) == []
        sup.halt("venue wobbly", "alice", mode="reduce_only")
        assert step(sup, clock) == step(sup, clock) == ["reduce_only"]  # once per episode
        sup.resume("bob", "venue steady")
        assert step(sup, clock) == []
        assert hook.wait_for(lambda r: len(r.bodies) == 2)
    firing, resolved = hook.bodies
    assert [(b["key"], b["state"], b["severity"]) for b in hook.bodies] == [
        ("reduce_only", "firing", "warning"), ("reduce_only", "resolved", "warning"),
    ]  # fmt: skip
    assert firing["summary"] == (
        "reduce-only by alice: venue wobbly: orders that grow a position block (REDUCE_ONLY_MODE)"
    )
    assert resolved["summary"] == "reduce-only lifted: orders that grow a position trade again"


def test_a_gate_that_does_not_answer_the_view_does_not_stop_the_alerts(clock):
    import threading

    from tests.helpers import GateHold

    with Receiver() as hook:
        with RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup:
            step(sup, clock)
            held, release = threading.Event(), threading.Event()
            assert sup.gate_ref is not None
            sup.gate_ref.tell(GateHold(held, release))
            assert held.wait(5)
            try:
                sup.report_ess_active(True, "desk halt")  # on the board: no gate needed to see it
                clock.advance(1)
                assert sup.alerting is not None and sup.alerting.settle() == ["halt"]
            finally:
                release.set()
            assert hook.wait_for(lambda r: len(r.bodies) == 1)
        assert hook.bodies[0]["key"] == "halt"


def test_a_signal_the_gate_refuses_fails_closed_though_fetched_a_moment_ago(clock):
    """Fresh by age, stamped an hour ago: every order blocks RISK_STATE_STALE, so the alert says so."""
    from datetime import timedelta

    with (
        Receiver() as hook,
        RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup,
    ):
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now() - timedelta(hours=1)))
        for name in sup.config.accounts.accounts:
            sup.report_account_snapshot(AccountSnapshot(name, 10_000.0))
        clock.advance(1.0)
        assert sup.alerting is not None and sup.alerting.settle() == ["fail_closed"]
        assert hook.wait_for(lambda r: any(b["key"] == "fail_closed" for b in r.bodies))
    body = next(b for b in hook.bodies if b["key"] == "fail_closed")
    assert body["summary"] == "gate failing closed: Risk v3 signal evaluated 3601 s ago (limit 900 s)"


def test_an_operator_halt_is_one_line_naming_the_operator_once(clock):
    with (
        Receiver() as hook,
        RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup,
    ):
        step(sup, clock)
        sup.halt("drill", by="bob")
        assert step(sup, clock) == ["halt"]
        assert hook.wait_for(lambda r: len(r.bodies) == 1)
        sup.resume(by="bob")
        assert step(sup, clock) == []
        assert hook.wait_for(lambda r: len(r.bodies) == 2)
    firing, resolved = hook.bodies
    assert firing["summary"] == "trading halted by operator bob (since 12:00 UTC): drill"
    assert resolved["summary"] == "trading no longer halted by operator bob"


def test_an_endless_answer_body_is_never_read(clock):
    """A webhook must not be able to fill the gate's memory: the status is enough."""
    with Receiver(endless_body=True) as hook:
        with RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup:
            assert sup.alerting is not None
            step(sup, clock)
            step(sup, clock, ess=True)
            assert sup.alerting.senders[0].wait_attempts(1, timeout=10)
            assert sup.alerting.senders[0].delivered == 1
        assert hook.body_bytes_sent < 50_000_000  # the client hung up; it did not take it all


def test_a_receiver_dribbling_its_answer_fails_at_timeout_s_for_the_whole_request(clock):
    with Receiver(dribble=True) as hook:
        hooks = {"h": {"url": hook.url, "timeout_s": 0.5}}
        with RiskSupervisor(alert_config(hooks), clock=clock, poll_upstreams=False) as sup:
            assert sup.alerting is not None
            sender = sup.alerting.senders[0]
            step(sup, clock)
            step(sup, clock, ess=True)
            assert sender.wait_attempts(1, timeout=10)  # each read within 0.5 s; the whole request not
            assert sender.delivered == 0
            step(sup, clock, ess=True, seconds=1.0)  # the retry is due; the first request still dribbles
            assert sender.wait_attempts(2, timeout=10)
            assert hook.requests == 1  # no second request piled onto the first
            events = journal_events(sup, "alert_delivery")
            hook.close()
        assert "timeout_s" in events[0]["detail"]


def test_a_message_refused_for_good_is_dropped_and_later_ones_go_out(clock):
    """A revoked Slack URL answers 404 forever: it must not hold back every later alert."""
    with Receiver(statuses=[404, 404, 404]) as hook:
        with RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup:
            assert sup.alerting is not None
            sender = sup.alerting.senders[0]
            step(sup, clock)
            step(sup, clock, ess=True)  # firing: 404
            assert sender.wait_attempts(1, timeout=10)
            step(sup, clock, ess=True, seconds=1.0)  # 404 again
            assert sender.wait_attempts(2, timeout=10)
            step(sup, clock, ess=True, seconds=2.0)  # the third 404: dropped
            assert sender.wait_attempts(3, timeout=10)
            step(sup, clock)  # resolved: delivered
            assert hook.wait_for(lambda r: len(r.delivered()) == 1)
            assert sup.alerting.wait_delivered()
            events = journal_events(sup, "alert_d")
        assert [b["state"] for b in hook.delivered()] == ["resolved"]
        assert sender.dropped == 1
    kinds = [e["kind"] for e in events]
    assert "alert_dropped" in kinds and kinds[-1] == "alert_delivered"


def test_a_gate_too_busy_to_answer_never_resolves_a_loss_limit(clock, monkeypatch):
    """No view (the ask timed out) is not "no loss": the last figures stand until the gate answers."""
    with Receiver() as hook:
        with RiskSupervisor(alert_config({"h": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup:
            assert sup.alerting is not None
            step(sup, clock)
            sup.report_account_snapshot(AccountSnapshot("main", 9_000.0))  # -10 % on a -2 % daily limit
            clock.advance(1)
            assert "loss_limit:main:daily" in sup.alerting.settle()
            runtime = sup._runtime
            with monkeypatch.context() as m:
                m.setattr(runtime, "gate_view", lambda timeout=1.0: None)  # what a timed-out ask returns
                clock.advance(1)
                clock.advance(1)
                assert "loss_limit:main:daily" in sup.alerting.settle()
            assert sup.alerting.wait_delivered()
        assert not any(b["state"] == "resolved" for b in hook.bodies)


def test_the_state_document_says_what_fires_and_how_each_webhook_fares(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as off:
        assert off.state()["alerts"] == {"enabled": False}
    hook = Receiver()
    with hook, RiskSupervisor(alert_config({"ops": {"url": hook.url}}), clock=clock, poll_upstreams=False) as sup:
        step(sup, clock)
        assert step(sup, clock, ess=True) == ["halt"]
        assert sup.alerting is not None and sup.alerting.wait_delivered()
        alerts = sup.state()["alerts"]
    assert alerts["enabled"] is True and alerts["firing"] == ["halt"]
    assert alerts["webhooks"] == [
        {"name": "ops", "format": "json", "queued": 0, "delivered": 1, "dropped": 0, "failing": False}
    ]
    assert hook.url not in str(alerts)  # the URL may be a secret
