"""The upstream simulator: real HTTP on loopback, controlled over HTTP too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from supervisor.sim.simulator import UpstreamSimulator
from supervisor.sources.http import FetchError, fetch_json
from supervisor.sources.upstream import parse_account_snapshot, parse_ess_status, parse_risk_signal


@pytest.fixture
def sim(clock):
    with UpstreamSimulator(clock=clock) as s:
        yield s


@pytest.fixture
def client():
    with httpx.Client(timeout=2.0) as c:
        yield c


def test_risk_is_404_until_set_then_serves_each_level(sim, client):
    r = client.get(f"{sim.url}/risk/global")
    assert r.status_code == 404 and r.json()["detail"] == "No risk evaluation available yet"
    for level in ("info", "warning", "critical"):
        assert client.post(f"{sim.url}/control/risk", json={"level": level}).status_code == 200
        sig = parse_risk_signal(client.get(f"{sim.url}/risk/global").json())
        assert sig.risk_level == level.upper() and sig.timestamp == sim.clock.now()


def test_ess_and_accounts_through_control_endpoints(sim, client):
    assert parse_ess_status(client.get(f"{sim.url}/api/emergency/status").json()).active is False
    client.post(f"{sim.url}/control/ess", json={"active": True, "reason": "drill"})
    status = parse_ess_status(client.get(f"{sim.url}/api/emergency/status").json())
    assert (status.active, status.detail) == (True, "drill")
    assert client.get(f"{sim.url}/accounts/main/snapshot").status_code == 404
    pos = [{"symbol": "BTCUSDT", "exchange": "binance", "quantity": -0.1, "mark_price": 65000}]
    client.post(f"{sim.url}/control/accounts/main", json={"equity": 12345, "positions": pos})
    snap = parse_account_snapshot(client.get(f"{sim.url}/accounts/main/snapshot").json())
    assert (snap.equity, snap.positions[0].quantity) == (12345.0, -0.1)


def test_bad_control_requests_get_400(sim, client):
    assert client.post(f"{sim.url}/control/risk", json={"level": "panic"}).status_code == 400
    assert client.post(f"{sim.url}/control/fault", json={"target": "risk", "mode": "explode"}).status_code == 400
    assert client.post(f"{sim.url}/control/accounts/x", json={"positions": []}).status_code == 400
    assert client.post(f"{sim.url}/control/ess", content=b"[1]").status_code == 400


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("500", "http_5xx"), ("garbage", "not_json"), ("huge", "too_large"), ("down", "transport")],
)
def test_faults_reach_the_client_as_named_fetch_errors(sim, client, mode, kind):
    sim.set_risk("info")
    client.post(f"{sim.url}/control/fault", json={"target": "all", "mode": mode})
    for path in ("/risk/global", "/api/emergency/status"):
        with pytest.raises(FetchError) as info:
            fetch_json(client, f"{sim.url}{path}", 5.0)
        assert info.value.kind == kind


def test_slow_fault_times_out_a_short_client(sim):
    sim.set_risk("info")
    sim.set_fault("risk", "slow", delay_s=2.0)
    with httpx.Client(timeout=0.1) as short, pytest.raises(FetchError) as info:
        fetch_json(short, f"{sim.url}/risk/global", 5.0)
    assert info.value.kind == "timeout"


def test_cli_serves_until_sigterm(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor.cli",
            "simulate-upstream",
            "--port",
            "0",
            "--risk",
            "warning",
            "--account",
            "main=5000",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline()  # "upstream simulator on http://127.0.0.1:PORT ..."
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        with httpx.Client(timeout=2.0) as c:
            assert parse_risk_signal(c.get(f"{url}/risk/global").json()).risk_level == "WARNING"
            assert c.get(f"{url}/accounts/main/snapshot").json()["equity"] == 5000.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
