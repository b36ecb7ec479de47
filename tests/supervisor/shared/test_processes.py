"""Several `riskgate run` processes on one real PostgreSQL, over real HTTP: a halt through
one reaches the other within 1 s, a killed instance's budget returns within its TTL, and
a server stopped hard makes every instance fail closed, keep its journal, and recover by
itself when the server is back."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from supervisor.shared.db import connect
from supervisor.shared.local_server import LocalServer
from supervisor.shared.schema import migrate
from supervisor.sim.simulator import UpstreamSimulator
from tests.supervisor.test_cli_run import LogFollower

DESK = "desk-token-for-the-shared-tests-01"
OPS = "operator-token-for-the-shared-tests"
RICH = 10_000_000.0
LEASE_TTL_S = 1.5


def config_text(sim_url: str, dsn: str, name: str, folder: Path) -> str:
    desk, ops = (hashlib.sha256(t.encode()).hexdigest() for t in (DESK, OPS))
    return f"""
[gate]
max_orders_per_s = 100000
max_messages_per_s = 100000
reservation_ttl_s = {LEASE_TTL_S}
duplicate_window_s = 0.0
max_repeats = 1000000
[risk_v3]
url = "{sim_url}"
poll_interval_s = 0.2
[ess]
url = "{sim_url}"
kill_switch_file = "{folder / "KILL_SWITCH"}"
poll_interval_s = 0.2
[accounts]
snapshot_url = "{sim_url}"
poll_interval_s = 0.2
[accounts.main]
exchange = "binance"
capital_profile = "normal"
[exchanges.binance]
max_notional_usd = 1000.0
[profiles.normal]
max_daily_loss_pct = -5.0
max_weekly_loss_pct = -10.0
max_single_trade_risk_pct = 5.0
max_open_positions = 10
allowed_leverage = 5.0
[symbols.SOLUSDT]
lot_step = 0.1
min_qty = 0.1
[state]
dir = "{folder / "state"}"
[store]
backend = "postgresql"
dsn = "{dsn}"
poll_interval_s = 0.1
timeout_s = 0.5
max_age_s = 0.5
lease_ttl_s = {LEASE_TTL_S}
[instance]
name = "{name}"
[api]
port = 0
[api.clients.desk]
token_sha256 = "{desk}"
[api.operators.ops]
token_sha256 = "{ops}"
[health]
interval_s = 1.0
"""


@contextlib.contextmanager
def run(sim_url: str, dsn: str, name: str, tmp: Path) -> Iterator[tuple[subprocess.Popen[str], LogFollower, str]]:
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.toml"
    cfg.write_text(config_text(sim_url, dsn, name, folder))
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        logs = LogFollower(proc)
        url = logs.wait_for("riskgate_running")["api"]
        logs.wait_for("riskgate_ready")
        yield proc, logs, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def order(n: str, quantity: float = 1.0) -> dict[str, object]:
    return {"order_id": n, "account": "main", "exchange": "binance", "strategy_id": "s", "symbol": "SOLUSDT",
            "side": "buy", "quantity": quantity, "price": 100.0, "leverage": 1.0}  # fmt: skip


def ask(client: httpx.Client, n: str, quantity: float = 1.0) -> dict[str, object]:
    r = client.post("/v1/evaluate", json=order(n, quantity), headers={"authorization": f"Bearer {DESK}"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def until(what, seconds: float):  # type: ignore[no-untyped-def]
    """Ask `what()` again and again (each a real round trip) until it is truthy; (value, seconds taken)."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        value = what()
        if value:
            return value, time.monotonic() - began
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
def sim() -> Iterator[UpstreamSimulator]:
    with UpstreamSimulator() as s:
        s.set_risk("info")
        s.set_ess(False)
        s.set_account("main", RICH)
        yield s


def test_a_halt_reaches_the_other_process_fast_and_a_killed_ones_budget_returns(sim, migrated_dsn, tmp_path):
    with contextlib.ExitStack() as stack:
        proc_a, _, url_a = stack.enter_context(run(sim.url, migrated_dsn, "a", tmp_path))
        _, _, url_b = stack.enter_context(run(sim.url, migrated_dsn, "b", tmp_path))
        a = stack.enter_context(httpx.Client(base_url=url_a, timeout=5))
        b = stack.enter_context(httpx.Client(base_url=url_b, timeout=5))
        assert ask(a, "warm-a", 0.1)["decision"] == "allow"
        assert ask(b, "warm-b", 0.1)["decision"] == "allow"
        # A halt through a: b blocks within 1 s (LISTEN/NOTIFY wakes b's round).
        r = a.post("/v1/halt", json={"reason": "drill"}, headers={"authorization": f"Bearer {OPS}"})
        assert r.status_code == 200, r.text
        seq = iter(range(10**9))
        blocked, took = until(lambda: ask(b, f"h{next(seq)}", 0.1)["reason_code"] == "ESS_HALT_ACTIVE", 1.0)
        assert blocked and took <= 1.0
        r = b.post("/v1/resume", json={"reason": "drill over"}, headers={"authorization": f"Bearer {OPS}"})
        assert r.status_code == 200, r.text
        until(lambda: ask(a, f"r{next(seq)}", 0.1)["decision"] == "allow", 2.0)
        # a takes the cap's budget, then dies without a word.
        until(lambda: ask(a, f"a{next(seq)}", 1.0)["reason_code"] == "BUDGET_UNAVAILABLE", 5.0)
        state = b.get("/v1/state").json()["store"]
        assert {row["name"] for row in state["instances"]} >= {"a", "b"}
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait(5)
        killed = time.monotonic()
        # b gets a's budget once a's leases lapse (their TTL) and b's next round asks.
        last: dict = {}

        def allowed() -> bool:
            last.update(ask(b, f"b{next(seq)}", 5.0))
            return bool(last["decision"] == "allow")

        try:
            until(allowed, 10.0)
        except AssertionError:
            why = f"{last.get('reason_code')}: {last.get('reason')}"
            raise AssertionError(f"b never allowed after a was killed: {why}") from None
        assert time.monotonic() - killed <= LEASE_TTL_S + 2.0
        rows = {row["name"]: row for row in b.get("/v1/state").json()["store"]["instances"]}
        until(lambda: {r["name"]: r for r in b.get("/v1/state").json()["store"]["instances"]}["a"]["state"]
              == "gone", 5.0)  # fmt: skip
        assert rows["b"]["state"] == "ready"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    from supervisor.shared.local_server import missing_reason
    from tests.supervisor.shared.conftest import _free_port

    why = missing_reason()
    if why is not None:
        pytest.skip(f"no throwaway PostgreSQL: {why}")
    folder = Path(tempfile.mkdtemp(prefix="riskgate-test-pg-"))  # not under pytest's temp folder (see conftest)
    server = LocalServer(folder, _free_port()).start()
    conn = connect(server.dsn(), 5.0, "test")
    migrate(conn)
    conn.close()
    yield server
    server.stop("immediate")
    shutil.rmtree(folder, ignore_errors=True)


def test_a_server_stopped_hard_fails_every_instance_closed_and_they_recover(sim, own_server, tmp_path):
    dsn = own_server.dsn()
    with run(sim.url, dsn, "a", tmp_path) as (_, logs, url), httpx.Client(base_url=url, timeout=5) as a:
        assert ask(a, "before", 0.1)["decision"] == "allow"
        own_server.stop("immediate")
        stopped = time.monotonic()
        seq = iter(range(10**9))
        until(lambda: ask(a, f"o{next(seq)}", 0.1)["reason_code"] == "SHARED_STATE_STALE", 3.0)
        assert time.monotonic() - stopped <= 0.5 + 1.0  # store.max_age_s, and a round's deadline
        state = a.get("/v1/state").json()
        assert state["ready"] is False and state["banner"]["state"] == "FAIL-CLOSED"
        assert ask(a, "during", 0.1)["reason_code"] == "SHARED_STATE_STALE"  # decided, and journaled locally
        own_server.start()
        until(lambda: ask(a, f"back{next(seq)}", 0.1)["decision"] == "allow", 10.0)

        # What was decided while the server was down reaches it once it is back.
        def shipped() -> bool:
            conn = connect(dsn, 5.0, "test")
            try:
                row = conn.execute("SELECT count(*) FROM decisions WHERE order_id = 'during'").fetchone()
            finally:
                conn.close()
            return bool(row and row[0] == 1)

        until(shipped, 10.0)
    assert logs.wait_for("shared_store_failed")["error"]
    assert logs.wait_for("shared_store_recovered")
