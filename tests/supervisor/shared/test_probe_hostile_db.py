"""Probe: hostile contents or code in the shared database."""

from __future__ import annotations

import psycopg

from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from supervisor.shared.schema import SCHEMA_VERSION
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def _sup(dsn, name, tmp_path, clock):
    s = RiskSupervisor(instance_config(dsn, name, tmp_path), clock=clock, poll_upstreams=False)
    s.start()
    feed(s, equity=RICH)
    return s


def test_a_grant_beyond_what_was_asked_is_not_trusted(migrated_dsn, tmp_path, clock):
    """riskgate_round replaced (or a buggy migration) answering a grant of the whole cap to
    every instance: each gate spends it, so two instances approve twice the cap."""
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "ALTER FUNCTION riskgate_round(text, text, boolean, text[], bigint[], bigint[], bigint[],"
            " bigint[], bigint, text[], text[], double precision, double precision, double precision)"
            " RENAME TO riskgate_round_real"
        )
        conn.execute("""
CREATE FUNCTION riskgate_round(p_instance TEXT, p_run TEXT, p_ready BOOLEAN, p_caps TEXT[],
    p_cap_units BIGINT[], p_positions BIGINT[], p_floor BIGINT[], p_want BIGINT[], p_ttl_ms BIGINT,
    p_accounts TEXT[], p_order_ids TEXT[], p_since DOUBLE PRECISION, p_window_s DOUBLE PRECISION,
    p_overlap_s DOUBLE PRECISION)
RETURNS JSONB LANGUAGE plpgsql AS $$
DECLARE v JSONB;
BEGIN
  v := riskgate_round_real(p_instance, p_run, p_ready, p_caps, p_cap_units, p_positions, p_floor, p_want, p_ttl_ms,
                           p_accounts, p_order_ids, p_since, p_window_s, p_overlap_s);
  SELECT jsonb_set(v, '{granted}', COALESCE(jsonb_object_agg(c, u), '{}'::jsonb)) INTO v
    FROM unnest(p_caps, p_cap_units) AS t(c, u);
  RETURN v;
END $$""")
    a = _sup(migrated_dsn, "a", tmp_path, clock)
    b = _sup(migrated_dsn, "b", tmp_path, clock)
    try:
        approved = 0.0
        for sup in (a, b):
            assert sup.shared.keeper.round()
            r = sup.evaluate(order(order_id=f"{sup.config.instance.name}-1", quantity=10.0))
            if r.decision != "block":
                approved += r.adjusted_quantity * 100.0
        assert approved <= 1000.0 + 1e-6, f"{approved} USD approved > exchange cap 1000"
    finally:
        a.stop()
        b.stop()


def test_operator_halt_row_deleted_fails_closed(migrated_dsn, tmp_path, clock):
    a = _sup(migrated_dsn, "a", tmp_path, clock)
    try:
        assert a.shared.keeper.round()
        with psycopg.connect(migrated_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM operator_halt")
        assert not a.shared.keeper.round()
        clock.advance(a.config.store.max_age_s + 0.5)
        feed(a, equity=RICH)
        r = a.evaluate(order(order_id="x", quantity=0.1))
        assert r.reason_code is RC.SHARED_STATE_STALE, r.reason
    finally:
        a.stop()


def test_schema_version_changed_while_running(migrated_dsn, tmp_path, clock):
    """A newer riskgate's migration (the next version) lands while this one runs: `run` refuses
    such a schema at start, but a running instance keeps using it."""
    a = _sup(migrated_dsn, "a", tmp_path, clock)
    try:
        assert a.shared.keeper.round()
        with psycopg.connect(migrated_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO riskgate_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
        ok = a.shared.keeper.round()
        assert not ok, "a round against a schema this riskgate does not know succeeded"
    finally:
        a.stop()
