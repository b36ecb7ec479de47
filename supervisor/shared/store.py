"""SharedStore: one instance's statements against the shared PostgreSQL store.

Each method is one transaction on a connection of its own kind (the keeper's
rounds, the journal's shipping, the controls' writes each hold one), bounded
by `store.timeout_s` (supervisor.shared.db.deadline). A method that fails
raises `SharedStoreError` and drops its connection; the next call connects
again. Nothing here runs on the decision path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from supervisor.shared.db import SharedStoreError, connect, deadline, psycopg_module, said
from supervisor.shared.schema import HALT_CHANNEL, require_current

__all__ = ["HaltRow", "InstanceRow", "LeaseAsk", "LeaseRow", "OverrideConflictError", "Round", "SharedStore"]


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """One cap's lease asked for in a round (micro-USD)."""

    cap: str
    cap_units: int
    positions_units: int
    floor_units: int  # never granted less (what is in flight, or the lease kept)
    want_units: int


@dataclass(frozen=True, slots=True)
class HaltRow:
    active: bool
    by: str | None
    reason: str | None
    since: str | None
    instance: str | None
    changed_at: datetime
    version: int = 0  # +1 on every write: orders halts and resumes (a clock may step back)
    halts: tuple[Any, ...] = ()  # each operator's halt: by, reason, since, mode (all | reduce_only)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    cap: str
    instance: str
    units: int
    expires_in_s: float


@dataclass(frozen=True, slots=True)
class InstanceRow:
    name: str
    host: str
    pid: int
    version: str
    api: str | None
    started_at: datetime
    heartbeat_age_s: float
    ready: bool
    stopped: bool


@dataclass(frozen=True, slots=True)
class Round:
    """What one round found: the grants (cap -> units), the shared halt, every instance and
    lease, and the live overrides (proposed or active, as their records' fields)."""

    granted: dict[str, int]
    halt: HaltRow
    instances: list[InstanceRow]
    leases: list[LeaseRow]
    overrides: list[dict[str, Any]]
    decided: list[tuple[str, str]] = field(default_factory=list)  # ids other runs approved
    decided_upto: float = 0.0  # up to when (the store's clock, epoch seconds) they were read
    decided_more: bool = False  # more were waiting than one round reads


class OverrideConflictError(SharedStoreError):
    """The override changed meanwhile (through another instance), or the account already has
    a running one: `status` is the HTTP status that says so."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class _Link:
    """One connection, opened when first needed, dropped after a failure."""

    def __init__(self, store: SharedStore, role: str) -> None:
        self._store = store
        self._role = role
        self._conn: Any = None
        self._lock = threading.Lock()

    def run(self, work: Any, transaction: bool = True) -> Any:
        """`work(conn)` in one transaction (or, `transaction=False`, as the autocommit
        statements it runs), within the deadline."""
        store = self._store
        psycopg = psycopg_module()
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(store.dsn, store.timeout_s, f"{store.instance}/{self._role}")
                conn = self._conn
                with deadline(conn, store.timeout_s), conn.transaction() if transaction else contextlib.nullcontext():
                    return work(conn)
            except psycopg.Error as exc:
                if getattr(exc, "sqlstate", None) == "RG001":  # the name was taken over: said plainly
                    self._drop()
                    raise SharedStoreError(f"instance name {store.instance!r} was taken over "
                                           "(silent past lease_ttl_s)") from exc  # fmt: skip
                self._drop()
                raise SharedStoreError(f"shared store ({self._role}): {said(exc)}") from exc
            except SharedStoreError:
                self._drop()
                raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close: gone either way
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()


class SharedStore:
    def __init__(self, dsn: str, instance: str, run: str, timeout_s: float, lease_ttl_s: float) -> None:
        self.dsn = dsn
        self.instance = instance
        self.run = run
        self.timeout_s = timeout_s
        self.lease_ttl_s = lease_ttl_s
        self._rounds = _Link(self, "keeper")
        self._writes = _Link(self, "controls")
        self._shipping = _Link(self, "journal")
        self._baselines = _Link(self, "baselines")

    # -- life --------------------------------------------------------------------------
    def claim(self, version: str, api: str | None) -> None:
        """Check the schema and take this instance's name: refused (SharedStoreError) when
        another live process holds it (heartbeat within the lease TTL and not stopped)."""

        def work(conn: Any) -> None:
            require_current(conn)
            row = conn.execute(
                "INSERT INTO instances AS i (name, run, host, pid, version, api, started_at, heartbeat_at, ready,"
                " stopped) VALUES (%s, %s, %s, %s, %s, %s, clock_timestamp(), clock_timestamp(), FALSE, FALSE)"
                " ON CONFLICT (name) DO UPDATE SET run = EXCLUDED.run, host = EXCLUDED.host, pid = EXCLUDED.pid,"
                " version = EXCLUDED.version, api = EXCLUDED.api, started_at = EXCLUDED.started_at,"
                " heartbeat_at = EXCLUDED.heartbeat_at, ready = FALSE, stopped = FALSE"
                " WHERE i.stopped OR i.run = EXCLUDED.run"
                " OR i.heartbeat_at < clock_timestamp() - %s * INTERVAL '1 second'"
                " RETURNING run",
                (self.instance, self.run, socket.gethostname(), os.getpid(), version, api, self.lease_ttl_s),
            ).fetchone()
            if row is None:
                held = conn.execute(
                    "SELECT host, pid, EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at) FROM instances"
                    " WHERE name = %s",
                    (self.instance,),
                ).fetchone()
                host, pid, age = held if held else ("?", "?", 0.0)
                raise SharedStoreError(
                    f"instance name {self.instance!r} is in use by pid {pid} on {host} (heartbeat {float(age):.1f} s"
                    " ago): give each instance its own [instance] name"
                )

        self._rounds.run(work)

    def round(
        self,
        asks: Sequence[LeaseAsk],
        ready: bool,
        decided: Sequence[tuple[str, str]] = (),
        since: float = 0.0,
        window_s: float = 60.0,
        overlap_s: float | None = None,
    ) -> Round:
        """Heartbeat, every lease renewed (or returned: caps not asked for), the shared
        halt and every instance and lease read: one statement (`riskgate_round`), so no
        lock is held in the database while this process is slow to read the answer."""
        ttl_ms = int(self.lease_ttl_s * 1000)

        def work(conn: Any) -> Round:
            row = conn.execute(
                "SELECT riskgate_round(%s, %s, %s, %s::text[], %s::bigint[], %s::bigint[], %s::bigint[],"
                " %s::bigint[], %s, %s::text[], %s::text[], %s, %s, %s)",
                (self.instance, self.run, ready, [a.cap for a in asks], [a.cap_units for a in asks],
                 [a.positions_units for a in asks], [a.floor_units for a in asks], [a.want_units for a in asks],
                 ttl_ms, [d[0] for d in decided], [d[1] for d in decided], since, window_s,
                 2 * self.timeout_s + 1.0 if overlap_s is None else overlap_s),
            ).fetchone()  # fmt: skip
            if row is None or not isinstance(row[0], dict):
                raise SharedStoreError("riskgate_round answered nothing readable")
            return _round_of(row[0])

        result: Round = self._rounds.run(work, transaction=False)
        return result

    def leave(self, keep: dict[str, int], keep_s: float) -> None:
        """At stop: every lease returned but `keep` (cap -> units still in flight, held for
        `keep_s` more at most), the instance marked stopped."""

        def work(conn: Any) -> None:
            caps = list(keep)
            conn.execute("DELETE FROM leases WHERE instance = %s AND NOT (cap = ANY(%s))", (self.instance, caps))
            conn.execute(
                "UPDATE leases AS l SET units = LEAST(l.units, k.units),"
                " expires_at = LEAST(l.expires_at, clock_timestamp() + %s * INTERVAL '1 second')"
                " FROM unnest(%s::text[], %s::bigint[]) AS k(cap, units) WHERE l.instance = %s AND l.cap = k.cap",
                (keep_s, caps, [keep[c] for c in caps], self.instance),
            )
            conn.execute(
                "UPDATE instances SET stopped = TRUE, ready = FALSE WHERE name = %s AND run = %s",
                (self.instance, self.run),
            )

        try:
            self._rounds.run(work)
        finally:
            self.close()

    def close(self) -> None:
        for link in (self._rounds, self._writes, self._shipping, self._baselines):
            link.close()

    # -- the operator halt ----------------------------------------------------------------
    def set_halt(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> HaltRow:
        """Change the shared halt under its row lock: `change` gets the row as it is now
        (`active, by, reason, since, halts`) and answers the row to write (OperatorControls
        merges this instance's halts into every other's there: a halt made here never
        replaces one made elsewhere). Every instance hears of it (NOTIFY, at commit)."""
        from psycopg.types.json import Jsonb

        def work(conn: Any) -> HaltRow:
            now = _halt(conn, lock=True)
            held = {"active": now.active, "by": now.by, "reason": now.reason, "since": now.since,
                    "halts": list(now.halts)}  # fmt: skip
            new = change(held)
            conn.execute(
                "UPDATE operator_halt SET active = %s, by_name = %s, reason = %s, since = %s, instance = %s,"
                " halts = %s, changed_at = clock_timestamp(), version = version + 1 WHERE id = 1",
                (bool(new.get("active")), new.get("by"), new.get("reason"), new.get("since"), self.instance,
                 Jsonb(list(new.get("halts") or []))),
            )  # fmt: skip
            conn.execute(f"NOTIFY {HALT_CHANNEL}")
            return _halt(conn)

        row: HaltRow = self._writes.run(work)
        return row

    def halt(self) -> HaltRow:
        row: HaltRow = self._writes.run(_halt)
        return row

    # -- overrides ------------------------------------------------------------------------------
    def put_override(self, record: dict[str, Any], was: str | None, now: str) -> None:
        """Write an override's record: a new proposal (`was` None), or a change of one whose state
        is still `was` (else OverrideConflictError 409: it changed through another instance).
        First, every live one past its end by this instance's clock `now` (ISO 8601) is marked
        expired (each instance's own sweep ends them locally by its clock); a second running one
        for the account is OverrideConflictError 409. Every instance hears of it (NOTIFY)."""
        psycopg = psycopg_module()
        from psycopg.types.json import Jsonb

        def work(conn: Any) -> None:
            args = (record["account"], record["state"], record["expires_at"], Jsonb(record))
            conn.execute(
                "UPDATE overrides SET state = 'expired', updated_at = clock_timestamp()"
                " WHERE state IN ('proposed', 'active') AND expires_at <= %s",
                (now,),
            )
            if was is None:
                conn.execute(
                    "INSERT INTO overrides (account, state, expires_at, record, updated_at, id)"
                    " VALUES (%s, %s, %s, %s, clock_timestamp(), %s)",
                    (*args, record["id"]),
                )
            else:
                changed = conn.execute(
                    "UPDATE overrides SET account = %s, state = %s, expires_at = %s, record = %s,"
                    " updated_at = clock_timestamp() WHERE id = %s AND state = %s",
                    (*args, record["id"], was),
                )
                if changed.rowcount != 1:
                    why = f"override {record['id']} is no longer {was} (changed through another instance, or ran out)"
                    raise OverrideConflictError(409, why)
            conn.execute(f"NOTIFY {HALT_CHANNEL}")

        try:
            self._writes.run(work)
        except SharedStoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise OverrideConflictError(409, f"account {record['account']} already has a running override "
                                       "(approved through another instance): revoke it first") from exc  # fmt: skip
            raise

    def override(self, override_id: str) -> dict[str, Any] | None:
        """One override's record as the store has it (any state), or None."""

        def work(conn: Any) -> dict[str, Any] | None:
            row = conn.execute("SELECT record FROM overrides WHERE id = %s", (override_id,)).fetchone()
            return dict(row[0]) if row and isinstance(row[0], dict) else None

        found: dict[str, Any] | None = self._writes.run(work)
        return found

    # -- the account tracker's baselines --------------------------------------------------------
    def check_schema(self) -> None:
        """`SchemaError` naming what to do when the database's schema is not this riskgate's."""
        self._baselines.run(require_current, transaction=False)

    def merge_baselines(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Offer baseline rows (`account, period, period_start, equity, source, set_at`; times
        ISO 8601): each is kept where it wins over the one held (riskgate_baseline_wins). The
        answer is the row that holds for each one offered (`period_start` in epoch seconds)."""
        from psycopg.types.json import Jsonb

        def work(conn: Any) -> list[dict[str, Any]]:
            row = conn.execute("SELECT riskgate_baselines_merge(%s, %s)", (self.instance, Jsonb(list(rows)))).fetchone()
            return list(row[0]) if row and isinstance(row[0], list) else []

        held: list[dict[str, Any]] = self._baselines.run(work, transaction=False)
        return held

    def baseline_changes(self, mark: str | None, since: datetime) -> tuple[list[dict[str, Any]], str]:
        """Baseline rows written since `mark` (None: every row of a period begun at `since` or
        later: the reader picks its current period's, whatever rows dated ahead say), and the
        mark to ask from next time: the oldest transaction still running now, so a row whose
        writer commits after this read is read next time."""

        def work(conn: Any) -> tuple[list[dict[str, Any]], str]:
            args: tuple[Any, ...] = (since,) if mark is None else (mark,)
            got = conn.execute(_RECENT_BASELINES if mark is None else _BASELINES_SINCE, args).fetchone()
            if got is None:
                raise SharedStoreError("baseline changes: no answer")
            return list(got[1]), str(got[0])

        found: tuple[list[dict[str, Any]], str] = self._baselines.run(work, transaction=False)
        return found

    def last_equities(self) -> dict[str, tuple[float, datetime]]:
        """Each account's last equity seen by any instance, and when."""

        def work(conn: Any) -> dict[str, tuple[float, datetime]]:
            rows = conn.execute("SELECT account, equity, at FROM last_equity WHERE isfinite(at)")
            return {str(a): (float(e), at) for a, e, at in rows}

        found: dict[str, tuple[float, datetime]] = self._baselines.run(work, transaction=False)
        return found

    def save_last_equities(self, items: dict[str, tuple[float, datetime]]) -> None:
        """Each account's last equity seen here: kept where later than the one held."""
        names = sorted(items)

        def work(conn: Any) -> None:
            conn.execute(
                "INSERT INTO last_equity AS l (account, equity, at, instance)"
                " SELECT a, e, t, %s FROM unnest(%s::text[], %s::float8[], %s::timestamptz[]) AS x(a, e, t)"
                " ON CONFLICT (account) DO UPDATE SET equity = EXCLUDED.equity, at = EXCLUDED.at,"
                " instance = EXCLUDED.instance WHERE EXCLUDED.at > l.at",
                (self.instance, names, [items[n][0] for n in names], [items[n][1] for n in names]),
            )

        self._baselines.run(work, transaction=False)

    # -- the journal --------------------------------------------------------------------------
    def shipped_mark(self, table: str) -> tuple[str, int] | None:
        def work(conn: Any) -> tuple[str, int] | None:
            row = conn.execute(
                "SELECT identity, last_rowid FROM journal_shipped WHERE instance = %s AND tbl = %s",
                (self.instance, table),
            ).fetchone()
            return (str(row[0]), int(row[1])) if row else None

        mark: tuple[str, int] | None = self._shipping.run(work)
        return mark

    def ship(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], identity: str, last: int) -> None:
        """Rows of the local journal's `table` (each `(run, seq, *columns)`), tagged with this
        instance, and the mark of how far shipping got: one transaction, rows by COPY (a row
        shipped twice is kept once)."""
        names = ", ".join(("instance", "run", "seq", *columns))
        staging = f"riskgate_ship_{table}"
        instance = self.instance

        def work(conn: Any) -> None:
            # Our names only (DECISION_COLUMNS, EVENT_COLUMNS, the two table names): nothing from outside.
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS")
            with conn.cursor() as cur, cur.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((instance, *row))
            conn.execute(f"INSERT INTO {table} SELECT * FROM {staging} ON CONFLICT DO NOTHING")  # noqa: S608 - ours
            conn.execute(
                "INSERT INTO journal_shipped (instance, tbl, identity, last_rowid) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (instance, tbl) DO UPDATE SET identity = EXCLUDED.identity,"
                " last_rowid = EXCLUDED.last_rowid",
                (instance, table, identity, last),
            )

        self._shipping.run(work)


# The oldest transaction still running, and the rows (the latest of each account and period,
# or those written by a transaction at least as new as the mark), in one snapshot.
_RECENT_BASELINES = (
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, (SELECT COALESCE(jsonb_agg(jsonb_build_object("
    "'account', b.account, 'period', b.period, 'period_start', EXTRACT(EPOCH FROM b.period_start),"
    " 'equity', b.equity, 'source', b.source, 'instance', b.instance) ORDER BY b.period_start), '[]'::jsonb)"
    " FROM baselines AS b WHERE b.period_start >= %s)"
)
_BASELINES_SINCE = (
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, (SELECT COALESCE(jsonb_agg(jsonb_build_object("
    "'account', b.account, 'period', b.period, 'period_start', EXTRACT(EPOCH FROM b.period_start),"
    " 'equity', b.equity, 'source', b.source, 'instance', b.instance) ORDER BY b.xid), '[]'::jsonb)"
    " FROM baselines AS b WHERE b.xid >= %s::xid8)"
)


def _round_of(doc: dict[str, Any]) -> Round:
    """A round's answer (riskgate_round's JSON) as records; SharedStoreError if its shape is wrong."""
    try:
        h = doc["halt"]
        halt = HaltRow(bool(h["active"]), h["by"], h["reason"], h["since"], h["instance"],
                       datetime.fromisoformat(h["changed_at"]), int(h["version"]),
                       _halts_field(h.get("halts")))  # fmt: skip
        instances = [
            InstanceRow(
                i["name"],
                i["host"],
                int(i["pid"]),
                i["version"],
                i["api"],
                datetime.fromisoformat(i["started_at"]),
                float(i["heartbeat_age_s"]),
                bool(i["ready"]),
                bool(i["stopped"]),
            )
            for i in doc["instances"]
        ]
        leases = [LeaseRow(x["cap"], x["instance"], int(x["units"]), float(x["expires_in_s"])) for x in doc["leases"]]
        granted = {str(cap): int(units) for cap, units in doc["granted"].items()}
        overrides = [dict(o) for o in doc["overrides"]]
        decided = [(str(a), str(o)) for a, o in doc["decided"]]
        upto = float(doc["decided_upto"])
        more = bool(doc["decided_more"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SharedStoreError(f"riskgate_round's answer is not readable: {type(exc).__name__}: {exc}") from exc
    return Round(granted, halt, instances, leases, overrides, decided, upto, more)


_HALT_ROW = (
    "SELECT active, by_name, reason, since, instance, changed_at, version, halts FROM operator_halt WHERE id = 1"
)


def _halt(conn: Any, lock: bool = False) -> HaltRow:
    row = conn.execute(_HALT_ROW + " FOR UPDATE" if lock else _HALT_ROW).fetchone()
    if row is None:
        raise SharedStoreError("the operator_halt row is missing: run `riskgate db migrate`")
    return HaltRow(bool(row[0]), row[1], row[2], row[3], row[4], row[5], int(row[6]), _halts_field(row[7]))


def _halts_field(value: Any) -> tuple[Any, ...]:
    """The halts column as it is: an entry that is not an object is kept, so that the controls
    read the whole list as one halt of every order (the strictest) rather than drop it."""
    if isinstance(value, list):
        return tuple(value)
    return () if value is None else (value,)


def _instances(conn: Any) -> list[InstanceRow]:
    rows = conn.execute(
        "SELECT name, host, pid, version, api, started_at, EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at),"
        " ready, stopped FROM instances ORDER BY name"
    ).fetchall()
    return [InstanceRow(r[0], r[1], int(r[2]), r[3], r[4], r[5], float(r[6]), bool(r[7]), bool(r[8])) for r in rows]


def _leases(conn: Any) -> list[LeaseRow]:
    rows = conn.execute(
        "SELECT cap, instance, units, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) FROM leases"
        " WHERE expires_at > clock_timestamp() ORDER BY cap, instance"
    ).fetchall()
    return [LeaseRow(r[0], r[1], int(r[2]), float(r[3])) for r in rows]


def read_instances(dsn: str, timeout_s: float) -> tuple[list[InstanceRow], list[LeaseRow], HaltRow]:
    """For `riskgate instances`: every instance, every live lease, the shared halt."""
    conn = connect(dsn, timeout_s, "cli")
    psycopg = psycopg_module()
    try:
        with deadline(conn, timeout_s):
            require_current(conn)
            return _instances(conn), _leases(conn), _halt(conn)
    except psycopg.Error as exc:
        raise SharedStoreError(f"shared store: {said(exc)}") from exc
    finally:
        conn.close()
