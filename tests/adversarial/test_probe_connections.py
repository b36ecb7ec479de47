"""Issue 22, item 5: idle connections locked operators out.

Eight connections that never sent a request, with `api.max_connections = 8`,
made `/healthz` and `POST /v1/halt` answer 503 for as long as they stayed, and
the server never closed them. Now a whole request must arrive within
`api.request_timeout_s`, and `api.operator_reserve` connections beyond the
limit serve only probes and operators' controls.
"""

from __future__ import annotations

import contextlib
import json
import socket

import httpx
import pytest

from supervisor import RiskSupervisor
from tests.helpers import feed, make_config, order
from tests.supervisor.api.conftest import ALICE, DESK, clients, operators

LIMIT = 8


@pytest.fixture
def crowded(clock):
    api = {"operators": operators(), "clients": clients(), "max_connections": LIMIT, "operator_reserve": 4,
           "request_timeout_s": 0.5}  # fmt: skip
    with RiskSupervisor(make_config(api=api), clock=clock, poll_upstreams=False) as sup:
        server = sup.serve_api(port=0)
        feed(sup)
        yield sup, server


def idle_connections(port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]


def closed_by_the_server(sock: socket.socket, within_s: float = 5.0) -> bool:
    sock.settimeout(within_s)
    try:
        while chunk := sock.recv(4096):  # a 4xx the server may send first is fine; then it must close
            del chunk
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_never_lock_operators_out_and_are_closed(crowded):
    _, server = crowded
    idle = idle_connections(server.port, LIMIT)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
            r = http.post("/v1/halt", json={"reason": "drill"}, headers={"Authorization": f"Bearer {ALICE}"})
            assert r.status_code == 200, r.text
            busy = http.post("/v1/evaluate", json=order(), headers={"Authorization": f"Bearer {DESK}"})
            assert busy.status_code == 503  # orders do not take the operators' room
        assert all(closed_by_the_server(s) for s in idle)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            r = http.post("/v1/evaluate", json=order(), headers={"Authorization": f"Bearer {DESK}"})
            assert r.status_code == 200 and r.json()["reason_code"] == "ESS_HALT_ACTIVE"
    finally:
        for s in idle:
            s.close()


def test_a_half_sent_request_is_closed_on_its_deadline(crowded):
    _, server = crowded
    body = json.dumps(order()).encode()
    with contextlib.closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as s:
        s.sendall(
            b"POST /v1/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + DESK.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        assert closed_by_the_server(s)
    with contextlib.closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        assert closed_by_the_server(s)


def test_a_keep_alive_connection_gets_a_new_deadline_per_request(crowded):
    _, server = crowded
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(3):  # one connection, three requests: each answered
            assert http.get("/healthz").status_code == 200


def test_beyond_the_reserve_everything_is_refused_at_once(crowded):
    _, server = crowded
    idle = idle_connections(server.port, LIMIT + 4)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 503
    finally:
        for s in idle:
            s.close()


def test_the_uvicorn_hooks_the_deadline_relies_on_are_there():
    """supervisor.api.protocol subclasses uvicorn's protocol: a release that renames these breaks it."""
    import inspect

    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for hook in ("connection_made", "on_message_complete", "on_response_complete", "connection_lost"):
        assert callable(getattr(HttpToolsProtocol, hook, None)), hook
    init = inspect.getsource(HttpToolsProtocol.__init__)
    assert "self.loop" in init and "self.transport" in init
    assert "self.server_state" in inspect.getsource(uvicorn.Server.__init__)


def test_a_request_served_from_the_reserve_closes_its_connection(crowded):
    """A second probe: 12 keep-alive connections asking POST /v1/halt without a token (401) kept
    the operator reserve, and Alice's halt got 503. Served from the reserve means one answer."""
    _, server = crowded
    idle = idle_connections(server.port, LIMIT)
    try:
        with contextlib.closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as s:
            s.sendall(b"POST /v1/halt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 2\r\n\r\n{}")  # fmt: skip
            answer = b""
            s.settimeout(5.0)
            while chunk := s.recv(4096):
                answer += chunk
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 401") and b"connection: close" in head
    finally:
        for s in idle:
            s.close()
