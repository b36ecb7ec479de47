"""Upstreams that trickle, never end, reset or flap: every fetch ends by its
deadline, the gate fails closed, polls never pile up, and stop() is prompt.

Real sockets and real actor threads; polls are driven by a FakeClock, and the
test waits on futures and thread joins, never on sleeps.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.ess_watcher import read_kill_switch
from supervisor import RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sim.simulator import UpstreamSimulator
from supervisor.sources.http import FetchError, fetch_json, source_client
from tests.adversarial.fault_server import FaultServer
from tests.helpers import make_config, order


def _within(seconds: float, fn, *args):
    """Run fn in a thread; fail (instead of hanging the suite) if it takes longer."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} still running after {seconds}s"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("trickle_headers", "timeout"), ("trickle_body", "timeout"), ("endless", "too_large"), ("reset", "transport")],
)
def test_every_fetch_ends_by_its_total_deadline(mode, kind):
    with FaultServer(mode) as server, source_client(0.5) as client, pytest.raises(FetchError) as info:
        _within(3.0, fetch_json, client, server.url, 0.5)
    assert info.value.kind == kind


@pytest.fixture
def sim(clock) -> Iterator[UpstreamSimulator]:
    with UpstreamSimulator(clock=clock) as s:
        s.set_risk("info")
        s.set_account("main", 10_000.0)
        yield s


def _config(sim: UpstreamSimulator, ess_url: str, tmp_path: Path):
    return make_config(
        risk_v3={"url": sim.url, "timeout_s": 0.5},
        ess={"url": ess_url, "kill_switch_file": str(tmp_path / "KILL"), "timeout_s": 1.0},
        accounts={"snapshot_url": sim.url, "timeout_s": 0.5},
        supervision={"heartbeat_timeout_s": 2.0},
        state={"dir": str(tmp_path / "state")},
    )


def _settle(sup: RiskSupervisor) -> None:
    for name in ("ess_watcher", "risk_v3_poller", "account_tracker"):
        sup.actor_ref(name).proxy().ping().get(timeout=10)


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body", "endless", "reset"])
def test_a_hostile_ess_fails_closed_without_piling_up_polls_or_threads(sim, clock, tmp_path, mode):
    with FaultServer(mode) as server:
        sup = RiskSupervisor(_config(sim, server.url, tmp_path), clock=clock).start()
        try:
            threads_after_start = threading.active_count()
            for _ in range(8):  # 4 s of ESS poll ticks, faster than a fetch can end
                clock.advance(0.5)
            _settle(sup)
            assert sup.evaluate(order()).reason_code is RC.ESS_STATE_STALE
            rows = {row["actor"]: row for row in sup._runtime.supervisor.rows()}
            assert rows["ess_watcher"]["restarts"] == 0  # slow is not dead: pings still answered
            assert server.requests <= 9  # one per poll that ran, never a queue of them
            assert threading.active_count() <= threads_after_start + 2
        finally:
            _within(5.0, sup.stop)
        assert not sup.actor_ref("ess_watcher")


def test_a_flapping_ess_allows_only_after_a_good_answer(sim, clock, tmp_path):
    with FaultServer("flap") as server, RiskSupervisor(_config(sim, server.url, tmp_path), clock=clock) as sup:
        _settle(sup)  # request 1: good
        decisions = []
        for _ in range(6):
            good = server.requests % 2 == 1  # the poll that just finished
            decisions.append((good, sup.evaluate(order(quantity=0.1)).decision))
            clock.advance(0.5)
            _settle(sup)
        assert all(decision == "block" for good, decision in decisions if not good)
        assert any(decision == "allow" for good, decision in decisions if good)


def test_a_fifo_at_the_kill_switch_path_is_unknown_and_never_blocks_the_read(tmp_path):
    fifo = tmp_path / "KILL"
    os.mkfifo(fifo)
    status = _within(3.0, read_kill_switch, str(fifo))
    assert status.active is None and "not a regular file" in status.detail


def test_a_dangling_symlink_at_the_kill_switch_path_is_unknown_not_clear(tmp_path):
    link = tmp_path / "KILL"
    link.symlink_to(tmp_path / "nowhere")
    status = read_kill_switch(str(link))
    assert status.active is None and "dangling" in status.detail
    (tmp_path / "nowhere").write_text("drill\n")
    assert read_kill_switch(str(link)).active is True  # a symlink to a real file is a halt
