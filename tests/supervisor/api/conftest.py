"""An API served by a real supervisor (FakeClock, state reported, not polled) on a free loopback port."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from tests.helpers import make_config, signal

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef01"
DESK = "desk-token-0123456789abcdef0"  # an execution client


def _hashed(**tokens: str) -> dict:
    return {name: {"token_sha256": hashlib.sha256(token.encode()).hexdigest()} for name, token in tokens.items()}


def operators() -> dict:
    return _hashed(alice=ALICE, bob=BOB)


def clients() -> dict:
    return _hashed(desk=DESK)


def feed(sup: RiskSupervisor, equity: float = 10_000.0) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, equity))


@pytest.fixture
def sup(clock):
    config = make_config(api={"operators": operators(), "clients": clients()})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        yield s


@pytest.fixture
def http(sup):
    server = sup.api_server
    assert server is not None
    # The execution service's token on every request, as a client would send it.
    with httpx.Client(base_url=server.url, timeout=10.0, headers={"Authorization": f"Bearer {DESK}"}) as client:
        yield client
