"""The shared store's schema, versioned: `riskgate db migrate` applies what is missing;
`riskgate run` refuses a database whose schema it does not know (none yet, or newer).

Amounts are integer micro-USD (`UNITS_PER_USD`), as in the gate. The leases'
arithmetic runs in one server-side function (`riskgate_lease`) under the
cap's row lock: one statement per round, atomic, whatever instances race. A
lease never holds more than its cap (CHECK), nor less than nothing.
"""

from __future__ import annotations

from typing import Any

from supervisor.journal.sqlite_file import DECISION_COLUMNS, EVENT_COLUMNS
from supervisor.shared.db import SchemaError

__all__ = ["HALT_CHANNEL", "MIGRATIONS", "SCHEMA_VERSION", "migrate", "require_current", "schema_version"]

HALT_CHANNEL = "riskgate_controls"  # NOTIFY'd on every halt, resume (any instance LISTENs)

_TEXT = {"order_id", "account", "exchange", "strategy_id", "symbol", "side", "decision", "reason_code", "reason",
         "risk_level", "kind", "source", "detail"}  # fmt: skip
_BIGINT = {"ts_us", "signal_ts_us", "reduce_only", "ess_active"}


def _column(name: str) -> str:
    kind = "TEXT" if name in _TEXT else "BIGINT" if name in _BIGINT else "DOUBLE PRECISION"
    return f"{name} {kind}"


def _round(version: int) -> str:
    """The round function as schema `version` has it: a round refuses to run on a schema
    migrated under a running riskgate (each version replaces it with its own number)."""
    halts = ", 'halts', h.halts" if version >= 2 else ""  # the stacked halts: a column of version 2
    return _ROUND.replace("{version}", str(version)).replace("{halts}", halts)


_ROUND = """
-- One round of one instance, in one statement (so no lock is held while the client
-- is slow): heartbeat (refused when another run took the name), leases of caps no
-- longer asked for returned, every asked lease granted (caps in the order given:
-- every instance locks them in the same order), and what the instance shows: the
-- shared halt, every instance, every live lease.
CREATE OR REPLACE FUNCTION riskgate_round(p_instance TEXT, p_run TEXT, p_ready BOOLEAN, p_caps TEXT[],
                               p_cap_units BIGINT[], p_positions BIGINT[], p_floor BIGINT[],
                               p_want BIGINT[], p_ttl_ms BIGINT,
                               p_accounts TEXT[], p_order_ids TEXT[], p_since DOUBLE PRECISION,
                               p_window_s DOUBLE PRECISION, p_overlap_s DOUBLE PRECISION)
RETURNS JSONB LANGUAGE plpgsql AS $$
DECLARE
    v_granted JSONB;
    v_decided JSONB;
    v_count BIGINT;
    v_last TIMESTAMPTZ;
    v_now TIMESTAMPTZ := clock_timestamp();
BEGIN
    IF (SELECT max(version) FROM riskgate_schema) IS DISTINCT FROM {version} THEN
        RAISE EXCEPTION 'the schema is no longer version {version}: this riskgate stops sharing (restart it)'
            USING ERRCODE = 'RG002';
    END IF;
    UPDATE instances SET heartbeat_at = clock_timestamp(), ready = p_ready, stopped = FALSE
        WHERE name = p_instance AND run = p_run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'instance name % was taken over (silent past lease_ttl_s)', p_instance
            USING ERRCODE = 'RG001';
    END IF;
    DELETE FROM leases AS l WHERE l.instance = p_instance AND NOT (l.cap = ANY(p_caps));
    -- Order ids approved here since the last round, for the others' duplicate checks, kept for this
    -- instance's window; what every other run approved since this one last looked, read again over
    -- an overlap (a row's time is when it was inserted, and its round may commit up to a statement
    -- timeout later: a cursor on insertion order loses rows committed out of order). At most
    -- 100,000 a round: 'more' says the rest waits for the next round (the state is not confirmed).
    INSERT INTO decided_orders (account, order_id, instance, run, decided_at, keep_until)
        SELECT a, o, p_instance, p_run, v_now, v_now + p_window_s * INTERVAL '1 second'
        FROM unnest(p_accounts, p_order_ids) AS d(a, o);
    DELETE FROM decided_orders WHERE keep_until < v_now;
    SELECT COALESCE(jsonb_agg(jsonb_build_array(d.account, d.order_id) ORDER BY d.decided_at), '[]'::jsonb),
           count(*), max(d.decided_at)
        INTO v_decided, v_count, v_last
        FROM (SELECT * FROM decided_orders
              WHERE run <> p_run AND decided_at > to_timestamp(p_since) - p_overlap_s * INTERVAL '1 second'
              ORDER BY decided_at LIMIT 100000) AS d;
    SELECT COALESCE(jsonb_object_agg(g.cap, g.granted), '{}'::jsonb) INTO v_granted
        FROM unnest(p_caps, p_cap_units, p_positions, p_floor, p_want) WITH ORDINALITY
            AS a(cap, cap_units, positions, floor_units, want, n)
        CROSS JOIN LATERAL riskgate_lease(a.cap, p_instance, a.cap_units, a.positions, a.positions,
                                          a.floor_units, a.want, p_ttl_ms) AS g;
    RETURN jsonb_build_object(
        'granted', v_granted,
        'decided', v_decided,
        'decided_more', v_count >= 100000,
        'decided_upto', EXTRACT(EPOCH FROM CASE WHEN v_count >= 100000 THEN v_last ELSE v_now END),
        'halt', (SELECT jsonb_build_object('active', h.active, 'by', h.by_name, 'reason', h.reason,
                                           'since', h.since, 'instance', h.instance, 'changed_at', h.changed_at,
                                           'version', h.version{halts})
                 FROM operator_halt AS h WHERE h.id = 1),
        'instances', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                          'name', i.name, 'host', i.host, 'pid', i.pid, 'version', i.version, 'api', i.api,
                          'started_at', i.started_at,
                          'heartbeat_age_s', EXTRACT(EPOCH FROM clock_timestamp() - i.heartbeat_at),
                          'ready', i.ready, 'stopped', i.stopped) ORDER BY i.name), '[]'::jsonb)
                      FROM instances AS i),
        'overrides', (SELECT COALESCE(jsonb_agg(o.record ORDER BY o.id), '[]'::jsonb) FROM overrides AS o
                      WHERE o.state IN ('proposed', 'active')),
        'leases', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                       'cap', l.cap, 'instance', l.instance, 'units', l.units,
                       'expires_in_s', EXTRACT(EPOCH FROM l.expires_at - clock_timestamp()))
                       ORDER BY l.cap, l.instance), '[]'::jsonb)
                   FROM leases AS l WHERE l.expires_at > clock_timestamp()));
END $$;
"""


# Column names and types are ours (DECISION_COLUMNS, EVENT_COLUMNS): nothing is interpolated from outside.
_V1 = f"""
CREATE TABLE instances (
    name TEXT PRIMARY KEY,
    run TEXT NOT NULL,
    host TEXT NOT NULL, pid INTEGER NOT NULL, version TEXT NOT NULL, api TEXT,
    started_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL,
    ready BOOLEAN NOT NULL DEFAULT FALSE, stopped BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE budgets (
    cap TEXT PRIMARY KEY,
    cap_units BIGINT NOT NULL CHECK (cap_units >= 0),
    positions_units BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE leases (
    cap TEXT NOT NULL REFERENCES budgets (cap),
    instance TEXT NOT NULL,
    units BIGINT NOT NULL,
    cap_units BIGINT NOT NULL,
    base_units BIGINT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cap, instance),
    CHECK (units >= 0 AND units <= cap_units));
CREATE TABLE operator_halt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    active BOOLEAN NOT NULL,
    by_name TEXT, reason TEXT, since TEXT,
    instance TEXT, changed_at TIMESTAMPTZ NOT NULL,
    version BIGINT NOT NULL DEFAULT 0);  -- +1 on every write: what orders them (never a clock)
INSERT INTO operator_halt (id, active, changed_at) VALUES (1, FALSE, now());
CREATE TABLE decisions (
    instance TEXT NOT NULL, run TEXT NOT NULL, seq BIGINT NOT NULL,
    {", ".join(_column(c) for c in DECISION_COLUMNS)},
    UNIQUE (instance, run, seq));
CREATE INDEX decisions_ts ON decisions (ts_us);
CREATE INDEX decisions_account_ts ON decisions (account, ts_us);
CREATE INDEX decisions_order ON decisions (order_id);
CREATE TABLE events (
    instance TEXT NOT NULL, run TEXT NOT NULL, seq BIGINT NOT NULL,
    {", ".join(_column(c) for c in EVENT_COLUMNS)},
    UNIQUE (instance, run, seq));
CREATE INDEX events_ts ON events (ts_us);
CREATE TABLE overrides (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('proposed', 'active', 'expired', 'revoked')),
    expires_at TIMESTAMPTZ NOT NULL,
    record JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL);
-- One running override per account, whichever instance approved it: the second line.
CREATE UNIQUE INDEX overrides_one_active ON overrides (account) WHERE state = 'active';
CREATE TABLE decided_orders (
    account TEXT NOT NULL, order_id TEXT NOT NULL, instance TEXT NOT NULL, run TEXT NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL,
    keep_until TIMESTAMPTZ NOT NULL);  -- the inserting instance's duplicate window
CREATE INDEX decided_orders_at ON decided_orders (decided_at);
CREATE INDEX decided_orders_keep ON decided_orders (keep_until);
CREATE TABLE journal_shipped (
    instance TEXT NOT NULL, tbl TEXT NOT NULL, identity TEXT NOT NULL, last_rowid BIGINT NOT NULL,
    PRIMARY KEY (instance, tbl));

-- One cap's lease for one instance, atomically under the cap's row lock: the
-- grant fits the cap beside the positions and every other live lease, and is
-- never less than what the instance already has in flight (p_floor).
CREATE FUNCTION riskgate_lease(p_cap TEXT, p_instance TEXT, p_cap_units BIGINT, p_positions BIGINT,
                               p_base BIGINT, p_floor BIGINT, p_want BIGINT, p_ttl_ms BIGINT)
RETURNS TABLE (cap TEXT, granted BIGINT, others BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    v_others BIGINT;
    v_grant BIGINT;
BEGIN
    INSERT INTO budgets AS b (cap, cap_units, positions_units, updated_at)
        VALUES (p_cap, p_cap_units, p_positions, clock_timestamp())
        ON CONFLICT ON CONSTRAINT budgets_pkey DO NOTHING;
    UPDATE budgets AS b SET cap_units = p_cap_units, positions_units = p_positions, updated_at = clock_timestamp()
        WHERE b.cap = p_cap;  -- takes the cap's row lock until commit
    SELECT COALESCE(SUM(l.units), 0) INTO v_others FROM leases AS l
        WHERE l.cap = p_cap AND l.instance <> p_instance AND l.expires_at > clock_timestamp();
    v_grant := GREATEST(LEAST(p_want, p_cap_units - p_positions - v_others), p_floor, 0);
    v_grant := LEAST(v_grant, p_cap_units);
    INSERT INTO leases AS l (cap, instance, units, cap_units, base_units, granted_at, expires_at)
        VALUES (p_cap, p_instance, v_grant, p_cap_units, p_base, clock_timestamp(),
                clock_timestamp() + p_ttl_ms * INTERVAL '1 millisecond')
        ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE SET
            units = EXCLUDED.units, cap_units = EXCLUDED.cap_units, base_units = EXCLUDED.base_units,
            granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at;
    RETURN QUERY SELECT p_cap, v_grant, v_others;
END $$;

{_round(1)}
"""  # noqa: S608 - see above

# Version 2: the account tracker's baselines, shared (day/week start equity, the week's peak,
# the loss limits' trip times) and each account's last equity. A row is changed only by a
# value that wins over it (riskgate_baseline_wins: an operator's latest word; a known
# baseline over an unknown one, one taken before the period over one taken in it, the
# higher of two alike: losses counted from the higher; the higher peak; the earlier trip; the
# later clear of a cooldown),
# so instances that race converge on one value whatever their order. `xid` is the writing
# transaction: a reader asks for rows whose xid is at least the oldest transaction still
# running when it last read (pg_snapshot_xmin), so a write that commits late is never missed.
_V2 = f"""
-- Each operator's halt (by, reason, since, mode: all | reduce_only): halts stack.
ALTER TABLE operator_halt ADD COLUMN halts JSONB NOT NULL DEFAULT '[]'::jsonb;
{_round(2)}
CREATE TABLE baselines (
    account TEXT NOT NULL, period TEXT NOT NULL, period_start TIMESTAMPTZ NOT NULL,
    equity DOUBLE PRECISION,  -- NULL: unknown for the period (a trip: the epoch seconds it tripped)
    source TEXT NOT NULL, instance TEXT NOT NULL, set_at TIMESTAMPTZ NOT NULL,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (account, period, period_start),
    CHECK (equity IS NULL OR equity <> 'NaN'::float8 AND abs(equity) <> 'Infinity'::float8),
    CHECK (isfinite(period_start) AND isfinite(set_at)));
CREATE INDEX baselines_xid ON baselines (xid);
CREATE TABLE last_equity (
    account TEXT PRIMARY KEY, equity DOUBLE PRECISION NOT NULL, at TIMESTAMPTZ NOT NULL, instance TEXT NOT NULL,
    CHECK (isfinite(at) AND equity <> 'NaN'::float8 AND abs(equity) <> 'Infinity'::float8));

CREATE FUNCTION riskgate_baseline_rank(p_equity DOUBLE PRECISION, p_source TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_equity IS NULL THEN 0 WHEN p_source = 'first_equity' THEN 1
                WHEN p_source LIKE 'operator:%' THEN 3 ELSE 2 END $$;

-- A trip or a clear is an instant (epoch seconds): one before its period began or ahead of the
-- store's clock (an instance's clock gone wrong, a row written by hand) never holds over one that is not.
CREATE FUNCTION riskgate_instant_ok(p_at DOUBLE PRECISION, p_start TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT p_at IS NOT NULL AND p_at >= EXTRACT(EPOCH FROM p_start)
           AND p_at <= EXTRACT(EPOCH FROM clock_timestamp()) + 3600 $$;

CREATE FUNCTION riskgate_baseline_wins(p_period TEXT, p_start TIMESTAMPTZ, n_equity DOUBLE PRECISION,
    n_source TEXT, n_at TIMESTAMPTZ, o_equity DOUBLE PRECISION, o_source TEXT, o_at TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(CASE
        WHEN p_period = 'peak' THEN n_equity > COALESCE(o_equity, '-Infinity'::float8)
        WHEN p_period LIKE '%\\_clear' OR p_period LIKE '%\\_trip' OR p_period LIKE '%\\_retrip' THEN
            riskgate_instant_ok(n_equity, p_start) AND (NOT riskgate_instant_ok(o_equity, p_start)
                OR CASE WHEN p_period LIKE '%\\_retrip' OR p_period LIKE '%\\_clear' THEN n_equity > o_equity
                        ELSE n_equity < o_equity END)
        WHEN riskgate_baseline_rank(n_equity, n_source) <> riskgate_baseline_rank(o_equity, o_source)
            THEN riskgate_baseline_rank(n_equity, n_source) > riskgate_baseline_rank(o_equity, o_source)
        WHEN n_source LIKE 'operator:%' THEN n_at > o_at OR o_at > clock_timestamp() + INTERVAL '1 hour'
        ELSE n_equity > o_equity END, FALSE) $$;

-- Each row offered is kept where it wins; answered: the row that holds, for each one offered.
CREATE FUNCTION riskgate_baselines_merge(p_instance TEXT, p_rows JSONB) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
    answer JSONB := '[]'::jsonb;
BEGIN
    FOR r IN SELECT * FROM jsonb_to_recordset(p_rows) AS x(account TEXT, period TEXT, period_start TIMESTAMPTZ,
                 equity DOUBLE PRECISION, source TEXT, set_at TIMESTAMPTZ)
             ORDER BY account, period, period_start  -- one lock order for every instance: no deadlock
    LOOP
        INSERT INTO baselines AS b (account, period, period_start, equity, source, instance, set_at)
        VALUES (r.account, r.period, r.period_start, r.equity, r.source, p_instance, r.set_at)
        ON CONFLICT (account, period, period_start) DO UPDATE
            SET equity = EXCLUDED.equity, source = EXCLUDED.source, instance = EXCLUDED.instance,
                set_at = EXCLUDED.set_at, xid = pg_current_xact_id()
            WHERE riskgate_baseline_wins(b.period, b.period_start, EXCLUDED.equity, EXCLUDED.source,
                                         EXCLUDED.set_at, b.equity, b.source, b.set_at);
        answer := answer || (SELECT jsonb_build_object('account', b.account, 'period', b.period,
                                 'period_start', EXTRACT(EPOCH FROM b.period_start), 'equity', b.equity,
                                 'source', b.source, 'instance', b.instance)
                             FROM baselines AS b WHERE b.account = r.account AND b.period = r.period
                             AND b.period_start = r.period_start);
    END LOOP;
    RETURN answer;
END $$;
"""  # noqa: S608 - no value from outside: the round function's text and our own names

#: (version, SQL): applied in order, each in its own transaction.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1), (2, _V2))
SCHEMA_VERSION = MIGRATIONS[-1][0]
_LOCK_KEY = 0x72_69_73_6B  # pg_advisory_xact_lock: one migration at a time


def schema_version(conn: Any) -> int | None:
    """The database's schema version, or None when riskgate never migrated it."""
    row = conn.execute("SELECT to_regclass('riskgate_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT max(version) FROM riskgate_schema").fetchone()
    return int(found[0]) if found and found[0] is not None else None


def require_current(conn: Any) -> int:
    """The schema version if this riskgate knows it; `SchemaError` naming what to do otherwise."""
    version = schema_version(conn)
    if version is None:
        raise SchemaError("the database has no riskgate schema: run `riskgate db migrate` first")
    if version > SCHEMA_VERSION:
        raise SchemaError(f"the database's schema is version {version}, newer than this riskgate knows "
                          f"({SCHEMA_VERSION}): upgrade riskgate")  # fmt: skip
    if version < SCHEMA_VERSION:
        raise SchemaError(f"the database's schema is version {version}; this riskgate needs {SCHEMA_VERSION}: "
                          "run `riskgate db migrate`")  # fmt: skip
    return version


def migrate(conn: Any) -> tuple[int | None, int]:
    """Apply every migration the database lacks; (version before, version after)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS riskgate_schema (version INTEGER PRIMARY KEY,"
            " migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        before = schema_version(conn)
        if before is not None and before > SCHEMA_VERSION:
            raise SchemaError(f"the database's schema is version {before}, newer than this riskgate knows "
                              f"({SCHEMA_VERSION}): nothing was changed")  # fmt: skip
    for version, sql in MIGRATIONS:
        if before is not None and version <= before:
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if (schema_version(conn) or 0) >= version:  # another migrate got there first
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO riskgate_schema (version) VALUES (%s)", (version,))
    return before, SCHEMA_VERSION
