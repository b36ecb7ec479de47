"""Issue 22, items 8-9: the overrides file dropped the active override.

Lowering `overrides.max_ttl_s` made one old record over the new bound spoil the
whole file at restart; past ~3,200 records the file outgrew its 1 MB read
limit. Records are now checked one by one, the bound applies to new proposals,
and ended overrides live apart from the live ones (appended to a history).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from supervisor import RiskSupervisor
from supervisor.ops.control_files import HISTORY_FILE, HISTORY_KEPT, OVERRIDES_FILE, OverrideRecord
from supervisor.ops.controls import ControlError
from tests.adversarial.test_controls_hostile import REDUCE, approved, config, feed
from tests.helpers import order


def test_lowering_max_ttl_keeps_the_running_override_and_the_history(clock, tmp_path):
    with RiskSupervisor(config(tmp_path, overrides={"max_ttl_s": 900.0}), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        old = approved(sup, ttl_s=900.0)
        sup.revoke_override(old, by="alice")  # history, approved under the old bound
        running = approved(sup, ttl_s=800.0)
    with RiskSupervisor(config(tmp_path, overrides={"max_ttl_s": 300.0}), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        states = {r.id: r.state for r in sup.overrides()}
        assert states == {old: "revoked", running: "active"}
        assert sup.evaluate(order(**REDUCE)).reason_code == "OVERRIDE_APPLIED"
        with pytest.raises(ControlError) as refused:  # the new bound holds for new proposals
            sup.propose_override("main", "again", 600.0, by="alice")
        assert refused.value.status == 422


def test_one_spoiled_record_costs_only_itself(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        running = approved(sup, ttl_s=600.0)
    path = tmp_path / "state" / OVERRIDES_FILE
    rows = json.loads(path.read_text())
    rows.insert(0, {"id": "junk", "state": "active"})
    rows.insert(0, 7)
    path.write_text(json.dumps(rows))
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert [r.id for r in sup.overrides()] == [running]
        assert sup.evaluate(order(**REDUCE)).reason_code == "OVERRIDE_APPLIED"


def ended(i: int) -> dict:
    return asdict(
        OverrideRecord(f"old{i:05d}", "main", "an old one " + "x" * 200, 60.0, "alice", "2025-01-01T00:00:00Z",
                       "revoked", ended_by="bob")
    )  # fmt: skip


def test_a_long_history_never_drops_the_active_override(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        running = approved(sup, ttl_s=600.0)
    path = tmp_path / "state" / OVERRIDES_FILE
    rows = [ended(i) for i in range(4_000)] + json.loads(path.read_text())  # as an older riskgate kept it
    path.write_text(json.dumps(rows, indent=1))
    assert path.stat().st_size > 1_000_000
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(**REDUCE)).reason_code == "OVERRIDE_APPLIED"
        shown = sup.overrides()
        assert shown[0].id == running and len(shown) == 1 + HISTORY_KEPT
    assert [r["id"] for r in json.loads(path.read_text())] == [running]  # the live file: live ones only
    history = (tmp_path / "state" / HISTORY_FILE).read_text().splitlines()
    assert len(history) <= HISTORY_KEPT and json.loads(history[-1])["id"] == "old03999"


def test_a_change_appends_to_the_history_and_never_rewrites_it(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        live = tmp_path / "state" / OVERRIDES_FILE
        history = tmp_path / "state" / HISTORY_FILE
        sizes = []
        for i in range(30):
            proposal = sup.propose_override("main", f"cycle {i}", 60.0, by="alice")
            sizes.append(live.stat().st_size)
            sup.revoke_override(proposal.id, by="bob")
            assert json.loads(live.read_text()) == []
        assert max(sizes) - min(sizes) <= 1  # one live record ("cycle 9", "cycle 10"), whatever came before it
        lines = history.read_text().splitlines()
        assert [json.loads(line)["reason"] for line in lines] == [f"cycle {i}" for i in range(30)]
        first_inode = history.stat().st_ino
        sup.revoke_override(sup.propose_override("main", "one more", 60.0, by="alice").id, by="bob")
        assert history.stat().st_ino == first_inode  # appended in place, not replaced


@pytest.mark.parametrize("state", ["proposed", "active"])
def test_a_live_looking_record_in_the_history_is_never_approvable_nor_revocable(clock, tmp_path, state):
    """A second probe: a history line edited to "proposed" could be approved by one operator."""
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        running = approved(sup, ttl_s=600.0)
    forged = {**ended(1), "id": "forged", "state": state, "proposed_by": "mallory"}
    if state == "active":
        forged.update(approved_by="bob", approved_at="2026-01-05T12:00:00Z", expires_at="2026-01-05T12:10:00Z",
                      ttl_s=600.0)  # fmt: skip
    with (tmp_path / "state" / HISTORY_FILE).open("a") as f:
        f.write(json.dumps(forged) + "\n")
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert [r.id for r in sup.overrides()] == [running]
        for act in (sup.approve_override, sup.revoke_override):
            with pytest.raises(ControlError) as refused:
                act("forged", by="alice")
            assert refused.value.status == 404
        assert sup.evaluate(order(**REDUCE)).reason_code == "OVERRIDE_APPLIED"  # the real one still runs
