"""The order socket (api.order_socket): orders over a persistent Unix socket, one JSON line each,
answered as POST /v1/evaluate answers them; hostile connections first."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from supervisor import RiskSupervisor
from supervisor.api.app import MAX_BODY_BYTES
from supervisor.api.order_socket import OrderSocket
from supervisor.api.server import ApiStartError
from supervisor.config import ConfigError, load_config
from supervisor.sim.demo import toml_text
from tests.helpers import config_dict, feed, make_config, order
from tests.supervisor.api.conftest import ALICE, DESK, clients, operators
from tests.supervisor.api.test_reload_and_auth import events

SCOPED = "scoped-desk-token-0123456789ab"


@pytest.fixture
def folder() -> Iterator[Path]:
    short = Path(tempfile.mkdtemp(prefix="rg-"))  # a socket's path has at most 100 bytes; pytest's are long
    yield short
    shutil.rmtree(short, ignore_errors=True)


def data(folder: Path, **api: object) -> dict:
    scoped = {"token_sha256": hashlib.sha256(SCOPED.encode()).hexdigest(), "accounts": ["main"]}
    where = str(folder / "o.sock")
    return config_dict(
        api={"operators": operators(), "clients": {**clients(), "narrow": scoped}, "order_socket": where, **api},
        state={"dir": str(folder / "state")},
    )


@pytest.fixture
def sup(folder, clock) -> Iterator[RiskSupervisor]:
    with RiskSupervisor(make_config(**data(folder)), clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        feed(s)
        yield s


class Conn:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10.0)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def ask(self, line: object) -> dict:
        self.send((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")
        return self.answer()

    def answer(self) -> dict:
        raw = self.file.readline()
        assert raw.endswith(b"\n"), raw
        body: dict = json.loads(raw)
        return body

    def closed(self) -> bool:
        """Whether the server closed the connection (reads to its end, whatever is left first)."""
        return self.file.read() is not None and self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def connect(sup: RiskSupervisor, token: str | None = DESK) -> Conn:
    conn = Conn(Path(sup.config.api.order_socket))
    if token is not None:
        assert conn.ask({"token": token}) == {"status": 200, "client": "desk" if token == DESK else "narrow"}
    return conn


def test_orders_are_answered_line_by_line_as_post_v1_evaluate_answers_them(sup):
    conn = connect(sup)
    over_http = httpx.post(
        sup.api_server.url + "/v1/evaluate", json=order(quantity=0.5), headers={"Authorization": f"Bearer {DESK}"}
    ).json()
    answers = [conn.ask(order(quantity=0.5)), conn.ask(order(quantity=500.0)), conn.ask(order(leverage=50.0))]
    same = ("decision", "reason_code", "adjusted_quantity", "risk_level", "ess_active")
    assert {k: answers[0][k] for k in same} == {k: over_http[k] for k in same}
    assert answers[0]["decision"] == "allow"
    assert answers[1]["decision"] in ("block", "scale_down") and answers[2]["decision"] == "block"
    sup.flush_journal()
    decided = {d["order_id"] for d in sup.decisions(limit=10)}
    assert {a["order_id"] for a in answers} <= decided  # journaled like every decision
    mode = os.stat(sup.config.api.order_socket).st_mode
    assert stat.S_ISSOCK(mode) and mode & 0o777 == 0o600  # nobody else on the machine connects
    conn.close()


def test_without_a_clients_token_nothing_is_decided_and_the_refusal_is_journaled(sup):
    for first, status in ((order(), 401), ({"token": "not-a-token-at-all-0123"}, 401), ({"token": ALICE}, 403)):
        conn = connect(sup, token=None)
        refused = conn.ask(first)
        assert refused["status"] == status and "decision" not in refused
        assert "token" in refused["detail"]
        assert conn.closed()
        conn.close()
    assert len(events(sup, "auth_failed")) == 3
    assert sup.decisions(limit=10) == []  # the order sent without a hello was never decided


def test_a_line_that_is_not_an_order_gets_its_answer_and_the_connection_goes_on(sup):
    conn = connect(sup)
    bad = conn.ask(b"{not json")
    assert bad["status"] == 422 and "not JSON" in bad["detail"]
    twice = conn.ask(b'{"account": "main", "account": "other"}')
    assert twice["decision"] == "block" and twice["reason_code"] == "INVALID_ORDER" and "twice" in twice["reason"]
    assert conn.ask([order()])["reason_code"] == "INVALID_ORDER"  # a list is not an order
    assert conn.ask(order())["decision"] == "allow"  # the framing held
    conn.close()


def test_a_client_held_to_some_accounts_is_held_to_them_here_too(sup):
    conn = connect(sup, token=SCOPED)
    assert conn.ask(order())["decision"] == "allow"
    other = conn.ask(order(account="other"))
    assert other["decision"] == "block" and other["reason_code"] == "CLIENT_NOT_PERMITTED"
    conn.close()


def test_a_line_over_the_body_limit_is_refused_and_the_connection_closed(sup):
    conn = connect(sup)
    conn.send(b'{"account": "' + b"x" * (MAX_BODY_BYTES + 10))  # no newline: the limit, not the line's end, decides
    answer = conn.answer()
    assert answer["status"] == 413 and conn.closed()
    conn.close()


def test_half_a_line_and_a_quiet_connection_are_closed(folder, clock):
    cfg = make_config(**data(folder, request_timeout_s=0.2, order_socket_idle_s=0.3))
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        half = connect(sup)
        half.send(b'{"account": "ma')
        quiet = connect(sup)
        assert half.closed() and quiet.closed()  # each read returns only once the server closed it
        half.close()
        quiet.close()


def test_connections_beyond_max_connections_are_refused_at_once(folder, clock):
    with RiskSupervisor(make_config(**data(folder, max_connections=8)), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        held = [connect(sup) for _ in range(8)]
        extra = Conn(Path(sup.config.api.order_socket))
        refused = extra.answer()
        assert refused["status"] == 503 and extra.closed()
        held.pop().close()  # one leaves: the next is served
        assert held[0].ask(order())["decision"] in ("allow", "block")
        for conn in [*held, extra]:
            conn.close()


def test_a_reload_that_removes_the_clients_token_ends_its_connection(folder, clock):
    first = data(folder)
    with RiskSupervisor(make_config(**first), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        conn = connect(sup)
        assert conn.ask(order())["decision"] == "allow"
        without = {**first, "api": {**first["api"], "clients": {}}}
        candidate = folder / "next.toml"
        candidate.write_text(toml_text(without))
        sup.reload(candidate)
        refused = conn.ask(order(quantity=2.0))
        assert refused["status"] == 401 and conn.closed()
        conn.close()


def test_a_file_at_the_sockets_path_is_never_removed_and_a_stale_socket_is(folder, clock):
    path = folder / "o.sock"
    path.write_text("an operator's notes")
    with (
        RiskSupervisor(make_config(**data(folder)), clock=clock, poll_upstreams=False) as sup,
        pytest.raises(ApiStartError, match=r"api.order_socket .* is not a socket"),
    ):
        sup.serve_api(port=0)
    assert path.read_text() == "an operator's notes"
    path.unlink()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening, closed: what a killed process leaves
    stale.close()
    with RiskSupervisor(make_config(**data(folder)), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        assert connect(sup).ask(order())["decision"] == "allow"
        other = {**data(folder), "state": {"dir": str(folder / "second")}}  # its own state, the same socket path
        with (
            RiskSupervisor(make_config(**other), clock=clock, poll_upstreams=False) as second,
            pytest.raises(ApiStartError, match="another process serves it"),
        ):
            second.serve_api(port=0)
        assert connect(sup).ask(order(quantity=0.5))["decision"] == "allow"  # the second took nothing away
    assert not path.exists()  # removed at stop


@pytest.mark.parametrize("path", ["/tmp/" + "x" * 120, "/tmp/a\0b"])
def test_a_path_no_unix_socket_can_have_is_a_config_error_naming_the_key(path):
    with pytest.raises(ConfigError, match="order_socket"):
        make_config(api={"order_socket": path})


# Found by a hostile probe of the order socket (each failed before its fix).


def test_a_hello_with_the_token_key_twice_is_refused(sup):
    conn = Conn(Path(sup.config.api.order_socket))
    answer = conn.ask(b'{"token": "not-a-token-at-all-0123", "token": "' + DESK.encode() + b'"}')
    assert answer["status"] == 401 and conn.closed()  # which token was meant? (it was: the last one)
    conn.close()


def test_a_line_one_byte_over_the_limit_is_refused_though_its_newline_came_with_it(sup):
    line = json.dumps(order()).encode()
    line = line[:-1] + b" " * (MAX_BODY_BYTES + 1 - len(line)) + b"}"  # valid JSON, one byte over
    conn = connect(sup)
    conn.send(line + b"\n")
    assert conn.answer()["status"] == 413 and conn.closed()
    conn.close()


@pytest.mark.parametrize("moved", [True, False])
def test_a_reload_that_moves_or_removes_the_order_socket_is_refused_naming_it(folder, clock, moved):
    first = data(folder)
    api = dict(first["api"])
    if moved:
        api["order_socket"] = str(folder / "moved.sock")
    else:
        del api["order_socket"]
    candidate = folder / "next.toml"
    candidate.write_text(toml_text({**first, "api": api}))
    with RiskSupervisor(make_config(**first), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        with pytest.raises(ConfigError, match=r"api.order_socket: changed; restart required"):
            sup.reload(candidate)
        assert sup.config.api.order_socket == first["api"]["order_socket"]
        assert connect(sup).ask(order())["decision"] == "allow"  # still served where it was


def test_a_relative_order_socket_is_taken_from_the_config_files_folder(folder):
    etc = folder / "etc"
    etc.mkdir()
    d = data(folder)
    d["api"]["order_socket"] = "o.sock"
    (etc / "c.toml").write_text(toml_text(d))
    assert Path(load_config(etc / "c.toml").api.order_socket) == etc.resolve() / "o.sock"


class _AcceptFailsOnce:
    """The listener, whose first accept() fails as it does when the process is out of file descriptors."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self._failed = sock, False

    def accept(self) -> tuple[socket.socket, object]:
        if not self._failed:
            self._failed = True
            raise OSError(errno.EMFILE, "Too many open files")
        return self._sock.accept()

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_failed_accept_does_not_end_the_order_socket(folder, clock, monkeypatch):
    bind = OrderSocket.bind

    def flaky_bind(self: OrderSocket) -> OrderSocket:
        bind(self)
        self._listener = _AcceptFailsOnce(self._listener)  # type: ignore[assignment]
        return self

    monkeypatch.setattr(OrderSocket, "bind", flaky_bind)
    with RiskSupervisor(make_config(**data(folder)), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        conn = Conn(Path(sup.config.api.order_socket))  # the connection waits in the backlog meanwhile
        assert conn.ask({"token": DESK}) == {"status": 200, "client": "desk"}
        conn.close()


def test_a_connection_that_sends_no_first_line_is_closed_within_request_timeout(folder, clock):
    cfg = make_config(**data(folder, request_timeout_s=0.2, order_socket_idle_s=60.0))
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        silent = Conn(Path(sup.config.api.order_socket))
        silent.sock.settimeout(5.0)  # closed long before: not the 60 s a connection past its hello may idle
        assert silent.closed()
        silent.close()


def test_an_order_socket_without_the_api_is_a_config_error_naming_it(folder):
    d = data(folder)
    d["api"]["enabled"] = False
    with pytest.raises(ConfigError, match=r"api.order_socket: is served with the API"):
        make_config(**d)
