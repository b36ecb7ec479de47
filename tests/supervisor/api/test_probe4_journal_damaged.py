"""Probe 26: GET /v1/decisions/series and /explain on a damaged journal answer, never 500."""

from __future__ import annotations

import sqlite3

import pytest

from supervisor.journal.store import to_us
from tests.helpers import order
from tests.supervisor.api.test_controls import call, serving


@pytest.fixture
def sup(clock, tmp_path):
    with serving(clock, tmp_path) as s:
        s.evaluate(order(order_id="ok1", quantity=0.5))
        s.flush_journal()
        yield s


def damage(sup, sql, *args):
    db = sqlite3.connect(str(sup.config.state.dir) + "/journal.sqlite")
    try:
        db.execute(sql, args)
        db.commit()
    finally:
        db.close()


def test_series_with_a_real_number_as_a_decision_time_answers(sup, clock):
    """A row whose ts_us is a REAL (the columns have no type: any value is kept): the bucket is
    a float and `per[decision][b]` raises TypeError, which the route does not catch: 500."""
    now = to_us(clock.now())
    damage(sup, "UPDATE decisions SET ts_us = ? WHERE order_id = 'ok1'", now - 0.5)
    r = call(sup, "GET", "/v1/decisions/series?range=15m", None)
    assert r.status_code in (200, 503), (r.status_code, r.text[:200])


def test_series_with_a_block_of_no_reason_code_answers(sup, clock):
    """Two block codes with the same count, one of them NULL: sorting (-count, code) compares
    None with a str: TypeError, 500."""
    now = to_us(clock.now())
    damage(
        sup,
        "INSERT INTO decisions (run, seq, ts_us, order_id, account, decision, reason_code)"
        " VALUES ('x', 1, ?, 'd1', 'main', 'block', NULL), ('x', 2, ?, 'd2', 'main', 'block', 'ESS_HALT_ACTIVE')",
        now - 1000,
        now - 1000,
    )
    r = call(sup, "GET", "/v1/decisions/series?range=15m", None)
    assert r.status_code in (200, 503), (r.status_code, r.text[:200])


def test_explain_of_a_row_with_no_time_answers(sup):
    """A decision row whose ts_us is NULL (or text): explanations computes row['ts_us'] - 60e6:
    TypeError, 500."""
    damage(sup, "UPDATE decisions SET ts_us = NULL WHERE order_id = 'ok1'")
    r = call(sup, "GET", "/v1/decisions/explain?order_id=ok1", None)
    assert r.status_code in (200, 503), (r.status_code, r.text[:200])
