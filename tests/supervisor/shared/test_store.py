"""The shared store against a real PostgreSQL: the schema's versions, instance names,
the lease function's arithmetic under racing instances, the halt's NOTIFY, and a
server that accepts and never answers."""

from __future__ import annotations

import threading
import time

import pytest

from supervisor.shared.db import SchemaError, SharedStoreError, connect
from supervisor.shared.listener import ControlListener
from supervisor.shared.schema import SCHEMA_VERSION, migrate, require_current, schema_version
from supervisor.shared.store import LeaseAsk, SharedStore

CAP = 1_000_000_000  # 1,000 USD in micro-USD


def store(dsn: str, name: str, run: str | None = None, ttl: float = 30.0) -> SharedStore:
    return SharedStore(dsn, name, run or f"run-{name}", 1.0, ttl)


def test_migrate_creates_the_schema_once_and_run_refuses_what_it_does_not_know(pg_dsn):
    conn = connect(pg_dsn, 5.0, "test")
    try:
        with pytest.raises(SchemaError, match="riskgate db migrate"):
            require_current(conn)
        assert migrate(conn) == (None, SCHEMA_VERSION)
        assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)  # again: nothing to do
        assert require_current(conn) == SCHEMA_VERSION
        conn.execute("INSERT INTO riskgate_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
        assert schema_version(conn) == SCHEMA_VERSION + 1
        with pytest.raises(SchemaError, match="newer than this riskgate knows"):
            require_current(conn)
        with pytest.raises(SchemaError, match="nothing was changed"):
            migrate(conn)
    finally:
        conn.close()


def test_a_store_without_the_schema_refuses_to_claim(pg_dsn):
    with pytest.raises(SchemaError, match="riskgate db migrate"):
        store(pg_dsn, "a").claim("test", None)


def test_a_live_instance_name_cannot_be_taken_a_stopped_one_can(migrated_dsn):
    a = store(migrated_dsn, "a")
    a.claim("test", None)
    with pytest.raises(SharedStoreError, match="instance name 'a' is in use by pid"):
        store(migrated_dsn, "a", run="other").claim("test", None)
    a.leave({}, 0.0)
    again = store(migrated_dsn, "a", run="other")
    again.claim("test", None)  # stopped: free to take
    with pytest.raises(SharedStoreError, match="taken over"):
        a.round([], True)  # the old run lost its name: its rounds fail (its gate then fails closed)
    again.close()


def test_a_silent_instance_name_is_taken_after_the_ttl(migrated_dsn):
    a = store(migrated_dsn, "a", ttl=30.0)
    a.claim("test", None)
    conn = connect(migrated_dsn, 5.0, "test")
    conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - INTERVAL '31 seconds'")
    conn.close()
    store(migrated_dsn, "a", run="other").claim("test", None)


def ask(cap: str, want: int, positions: int = 0, floor: int = 0) -> LeaseAsk:
    return LeaseAsk(cap, CAP, positions, floor, want)


def test_grants_fit_the_cap_beside_positions_and_other_leases(migrated_dsn):
    a, b = store(migrated_dsn, "a"), store(migrated_dsn, "b")
    a.claim("test", None)
    b.claim("test", None)
    assert a.round([ask("exchange:x", 600_000_000, positions=100_000_000)], True).granted == {"exchange:x": 600_000_000}
    # b wants all: it gets what is left beside the positions and a's lease.
    assert b.round([ask("exchange:x", CAP, positions=100_000_000)], True).granted == {"exchange:x": 300_000_000}
    # a returns what it does not need: b's next round gets it.
    assert a.round([ask("exchange:x", 100_000_000, positions=100_000_000)], True).granted["exchange:x"] == 100_000_000
    assert b.round([ask("exchange:x", CAP, positions=100_000_000)], True).granted == {"exchange:x": 800_000_000}


def test_a_grant_never_falls_below_the_floor_nor_above_the_cap(migrated_dsn):
    a, b = store(migrated_dsn, "a"), store(migrated_dsn, "b")
    a.claim("test", None)
    b.claim("test", None)
    a.round([ask("exchange:x", CAP)], True)
    # Nothing is left, but b has 50 in flight: it keeps them (never less than it holds).
    assert b.round([ask("exchange:x", 500_000_000, floor=50_000_000)], True).granted == {"exchange:x": 50_000_000}
    assert a.round([ask("exchange:x", 10 * CAP)], True).granted == {"exchange:x": CAP - 50_000_000}
    conn = connect(migrated_dsn, 5.0, "test")
    try:
        with pytest.raises(Exception, match="check"):  # the CHECK constraint: the second line
            conn.execute("UPDATE leases SET units = cap_units + 1")
    finally:
        conn.close()


def test_expired_leases_are_given_back_and_caps_not_asked_for_are_returned(migrated_dsn):
    a, b = store(migrated_dsn, "a"), store(migrated_dsn, "b")
    a.claim("test", None)
    b.claim("test", None)
    a.round([ask("exchange:x", CAP), ask("account:y", CAP)], True)
    assert b.round([ask("exchange:x", CAP)], True).granted == {"exchange:x": 0}
    conn = connect(migrated_dsn, 5.0, "test")
    conn.execute("UPDATE leases SET expires_at = clock_timestamp() - INTERVAL '1 second' WHERE cap = 'exchange:x'")
    conn.close()
    assert b.round([ask("exchange:x", CAP)], True).granted == {"exchange:x": CAP}  # a's lapsed: b gets all
    result = a.round([], True)  # a serves no cap now: its leases go
    assert [lease for lease in result.leases if lease.instance == "a"] == []


def test_racing_instances_never_lease_more_than_the_cap(migrated_dsn):
    stores = [store(migrated_dsn, f"i{n}") for n in range(6)]
    for s in stores:
        s.claim("test", None)
    start = threading.Barrier(len(stores))
    grants: list[int] = []
    lock = threading.Lock()

    def race(s: SharedStore) -> None:
        start.wait(5)
        for _ in range(20):
            got = s.round([ask("exchange:x", CAP // 3, positions=CAP // 10)], True).granted["exchange:x"]
            with lock:
                grants.append(got)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    conn = connect(migrated_dsn, 5.0, "test")
    total = conn.execute("SELECT sum(units) FROM leases WHERE cap = 'exchange:x'").fetchone()[0]
    conn.close()
    assert len(grants) == 120
    assert total + CAP // 10 <= CAP


def test_a_halt_through_one_instance_is_heard_by_another(migrated_dsn):
    a, b = store(migrated_dsn, "a"), store(migrated_dsn, "b")
    a.claim("test", None)
    heard = threading.Event()
    listener = ControlListener(migrated_dsn, "b", 1.0, heard.set)
    listener.start()
    try:
        assert listener.listening.wait(5)
        heard.wait(2)  # the call it makes on (re)connecting, for whatever it missed
        heard.clear()
        halt = {"by": "alice", "reason": "venue outage", "since": "2026-12-04T12:00:00+00:00", "mode": "all"}
        row = a.set_halt(lambda held: {**halt, "active": True, "halts": [*held["halts"], halt]})
        assert row.active and row.by == "alice"
        assert heard.wait(1.0), "the NOTIFY did not arrive within 1 s"
        assert b.halt().active and b.halt().reason == "venue outage"
    finally:
        listener.stop()


def test_a_server_that_accepts_and_never_answers_fails_the_round_within_its_deadline(migrated_dsn, pg_server):
    if isinstance(pg_server, str):
        pytest.skip("needs the throwaway server's TCP port to put a proxy in front")
    from tests.supervisor.shared.stall import StallingProxy

    with StallingProxy(("127.0.0.1", pg_server.port)) as proxy:
        dbname = migrated_dsn.split("dbname=")[1].split()[0]
        s = SharedStore(pg_server.tcp_dsn(dbname, proxy.port), "stalled", "run", 0.5, 30.0)
        s.claim("test", None)
        proxy.stall()
        began = time.monotonic()
        with pytest.raises(SharedStoreError):
            s.round([ask("exchange:x", CAP)], True)
        assert time.monotonic() - began < 2.0  # 0.5 s deadline, plus the cut
        s.close()


def test_connect_errors_never_show_the_dsn():
    with pytest.raises(SharedStoreError) as caught:
        connect("host=127.0.0.1 port=1 user=u password=hunter2 dbname=d", 1.0, "test")
    assert "hunter2" not in str(caught.value)


def test_the_store_keeps_one_running_override_per_account_whoever_approves(migrated_dsn):
    from supervisor.shared.store import OverrideConflictError

    a = store(migrated_dsn, "a")
    base = {"account": "main", "reason": "r", "ttl_s": 60.0, "proposed_by": "alice",
            "proposed_at": "2030-01-01T00:00:00Z", "ended_by": None}  # fmt: skip
    now = "2030-01-01T00:00:01Z"
    for n in ("o1", "o2"):
        a.put_override({**base, "id": n, "state": "proposed", "expires_at": "2030-01-01T00:05:00Z",
                        "approved_by": None, "approved_at": None}, None, now)  # fmt: skip
    active = {**base, "state": "active", "approved_by": "bob", "approved_at": now, "expires_at": "2030-01-01T00:01:01Z"}
    a.put_override({**active, "id": "o1"}, "proposed", now)
    with pytest.raises(OverrideConflictError, match="already has a running override"):
        a.put_override({**active, "id": "o2"}, "proposed", now)
    with pytest.raises(OverrideConflictError, match="no longer proposed"):
        a.put_override({**active, "id": "o1"}, "proposed", now)  # approved already (through another instance)
    # Past o1's end by the approver's clock: o1 is marked expired first, o2 may run.
    a.put_override({**active, "id": "o2", "expires_at": "2030-01-01T00:03:00Z"}, "proposed", "2030-01-01T00:02:00Z")
    assert a.override("o1")["state"] == "active"  # the record keeps what was written; the row says expired
    a.close()


def test_a_version_1_database_is_upgraded_in_place(pg_dsn):
    from supervisor.shared.schema import MIGRATIONS

    conn = connect(pg_dsn, 5.0, "test")
    try:
        with conn.transaction():  # what the first release of the schema made
            conn.execute("CREATE TABLE riskgate_schema (version INTEGER PRIMARY KEY,"
                         " migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())")  # fmt: skip
            conn.execute(MIGRATIONS[0][1])
            conn.execute("INSERT INTO riskgate_schema (version) VALUES (1)")
        conn.execute("INSERT INTO budgets VALUES ('binance', 5, 0, now())")
        with pytest.raises(SchemaError, match="needs 2: run `riskgate db migrate`"):
            require_current(conn)
        assert migrate(conn) == (1, SCHEMA_VERSION)
        assert conn.execute("SELECT cap_units FROM budgets").fetchone() == (5,)  # kept
        assert conn.execute("SELECT count(*) FROM baselines").fetchone() == (0,)
    finally:
        conn.close()
