"""An ASGI fast path for `POST /v1/evaluate` (and `GET /healthz`), in front of the FastAPI app.

It first refuses a request whose Host header names another server while the
API listens on loopback (421): a web page whose domain an attacker points at
127.0.0.1 (DNS rebinding) could otherwise read the state and send orders from
a browser on this machine.

FastAPI's request objects, dependency resolution and middleware stack cost
more than the decision itself. Orders are the one hot path, so this answers
them straight from the ASGI messages, with the same code as the FastAPI route
(`evaluate_body`: same body limit, same parsing, same answers); everything
else, `/docs` and the OpenAPI schema included, goes to FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from supervisor.api.app import MAX_BODY_BYTES, evaluate_body, refusal
from supervisor.api.auth import Gatekeeper
from supervisor.api.service import Decider

__all__ = ["EvaluateFastPath"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_MISDIRECTED = b'{"detail":"Host: this API answers only to 127.0.0.1, localhost or [::1] (it listens on loopback)"}'
_TOO_LARGE = b'{"detail":"body larger than %d bytes"}' % MAX_BODY_BYTES
_BUSY = b'{"detail":"too many connections (api.max_connections): try again; probes and controls are still served"}'
_CLOSE = {"Connection": "close"}
_ALIVE = b'{"status":"alive"}'
_HOSTS_KEPT = 16
_RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v1/halt", "/v1/resume", "/v1/reload", "/v1/state"})


class EvaluateFastPath:
    def __init__(self, app: ASGIApp, service: Decider, keeper: Gatekeeper) -> None:
        self.app = app
        self._service = service
        self._keeper = keeper
        self._loopback = service.config.api.host in _LOOPBACK_NAMES or service.config.api.host.startswith("127.")
        self._max_connections = service.config.api.max_connections
        self.connections: Callable[[], int] | None = None  # open connections now (set by the server)
        self._hosts_seen: set[bytes] = set()  # Host headers found to name this machine's loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = None
        authorization = []
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif key == b"host" and self._loopback and value not in self._hosts_seen:
                if not _loopback_host(value.decode("latin-1")):
                    await _answer(send, 421, _MISDIRECTED)
                    return
                if len(self._hosts_seen) < _HOSTS_KEPT:  # the few names callers use: not parsed again
                    self._hosts_seen.add(value)
        connections = self.connections
        if connections is not None and connections() > self._max_connections:
            if not _reserved(scope):
                await _answer(send, 503, _BUSY, _CLOSE)  # the room beyond max_connections is kept for operators
                return
            # Served from the reserve, then closed: nobody keeps a reserve slot by asking again and
            # again on one connection (a probe, or a 401 on an operator's path).
            send = _closing(send)
        path = scope["path"]
        if path == "/healthz" and scope["method"] == "GET":
            await _answer(send, 200, _ALIVE)  # the liveness probe, as FastAPI would answer it (one layer less)
            return
        if path != "/v1/evaluate" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        refused = refusal(
            self._service,
            self._keeper,
            "client",
            "POST",
            "/v1/evaluate",
            content_type,
            authorization,
            client and client[0],
        )
        if refused is not None:
            await _answer(send, refused[0], refused[1], refused[2])
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the caller is gone: nothing was asked of the gate
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _answer(send, 413, _TOO_LARGE)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        status, payload = await evaluate_body(self._service, b"".join(chunks), self._keeper.scope(authorization))
        await _answer(send, status, payload)


def _reserved(scope: Scope) -> bool:
    """Probes and operators' controls: served from the reserve beyond `api.max_connections`."""
    path: str = scope["path"]
    return path in _RESERVED_PATHS or path.startswith("/v1/overrides")


def _loopback_host(host: str) -> bool:
    """Whether a Host header names this machine's loopback ("127.0.0.1:8010", "[::1]", "localhost")."""
    if host.startswith("["):  # an IPv6 literal: "[::1]" or "[::1]:8010", nothing else after it
        name, bracket, port = host[1:].partition("]")
        if not bracket or (port and not (port[:1] == ":" and _is_port(port[1:]))):
            return False
    elif host.count(":") == 1:
        name, port = host.split(":")
        if not _is_port(port):
            return False
    else:
        name = host
    name = name.lower().rstrip(".")
    digits = name.replace(".", "")
    return name in _LOOPBACK_NAMES or (name.startswith("127.") and digits.isascii() and digits.isdigit())


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()


def _closing(send: Send) -> Send:
    """`send` with `Connection: close` on the answer (uvicorn then closes the connection)."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing


async def _answer(send: Send, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(payload)).encode())]
    if extra:
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
