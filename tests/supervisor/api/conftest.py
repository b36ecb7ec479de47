"""An API served by a real supervisor (FakeClock, state reported, not polled) on a free loopback port."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from supervisor import RiskSupervisor
from tests.helpers import make_config

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef01"
DESK = "desk-token-0123456789abcdef0"  # an execution client


def _hashed(**tokens: str) -> dict:
    return {name: {"token_sha256": hashlib.sha256(token.encode()).hexdigest()} for name, token in tokens.items()}


def operators() -> dict:
    return _hashed(alice=ALICE, bob=BOB)


def clients() -> dict:
    return _hashed(desk=DESK)


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
