"""Probe: `riskgate journal --csv` with the postgresql backend fails on every row."""

from __future__ import annotations

import io

from supervisor.cli_shared import shared_journal
from supervisor.facade import RiskSupervisor
from supervisor.journal import query
from supervisor.journal.store import Query
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_shared_journal_as_csv(migrated_dsn, tmp_path, clock):
    a = RiskSupervisor(instance_config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False)
    a.start()
    try:
        feed(a, equity=RICH)
        a.shared.keeper.round()
        a.evaluate(order(order_id="c1", quantity=0.1))
        a.flush_journal()
        a.shared.shipper.ship()
        out = io.StringIO()
        assert query.list_decisions(shared_journal(a.config), Query(), "csv", out) == 1
        assert "c1" in out.getvalue()
    finally:
        a.stop()
