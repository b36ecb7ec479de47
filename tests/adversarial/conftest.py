"""Fixtures for the probes: `sup` and `http` (a served supervisor and an execution client's
session, shared with tests/supervisor/api), `sup_plain` (no API), and the journal's events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor import RiskSupervisor
from supervisor.journal.store import JOURNAL_NAME, JournalReader
from tests.helpers import make_config
from tests.supervisor.api.conftest import http, sup

__all__ = ["http", "journal_events", "sup", "sup_plain", "sup_unlimited"]


@pytest.fixture
def sup_plain(clock):
    """A supervisor without the API (state reported, not polled)."""
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as s:
        yield s


@pytest.fixture
def sup_unlimited(clock):
    """No API, every source fed, no order-rate or repeat limit in the way, no supervision
    check when a test moves the clock."""
    from tests.helpers import feed

    gate = {"max_orders_per_s": 10**6, "max_repeats": 10**6}
    with RiskSupervisor(make_config(gate=gate, supervision={"check_interval_s": 1000.0}), clock=clock,
                        poll_upstreams=False) as s:  # fmt: skip
        feed(s)
        yield s


def journal_events(sup: RiskSupervisor, kind: str | None = None) -> list[dict]:
    """The journal's events in the order they happened, `detail` parsed; only `kind` when given."""
    sup.flush_journal()
    reader = JournalReader(Path(sup.config.state.dir) / JOURNAL_NAME)
    try:
        rows = list(reversed(reader.events(limit=10_000)))
    finally:
        reader.close()
    out = [{**row, "detail": json.loads(row["detail"]) if row["detail"] else {}} for row in rows]
    return [e for e in out if kind is None or e["kind"] == kind]
