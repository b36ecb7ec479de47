"""A served supervisor for the probes that come in over HTTP (FakeClock, state reported, not polled)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from supervisor import RiskSupervisor
from supervisor.ops.journal.store import JOURNAL_NAME, JournalReader
from tests.helpers import make_config
from tests.supervisor.api.conftest import DESK, clients, operators


@pytest.fixture
def served(clock):
    config = make_config(api={"operators": operators(), "clients": clients()})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        yield s


@pytest.fixture
def desk(served):
    """An execution client's HTTP session (the desk's token on every request)."""
    server = served.api_server
    assert server is not None
    with httpx.Client(base_url=server.url, timeout=10.0, headers={"Authorization": f"Bearer {DESK}"}) as client:
        yield client


@pytest.fixture
def sup_plain(clock):
    """A supervisor without the API (state reported, not polled)."""
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as s:
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
