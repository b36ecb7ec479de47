"""An ASGI fast path for `POST /v1/evaluate`, in front of the FastAPI app.

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
from supervisor.api.service import GateService

__all__ = ["EvaluateFastPath"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_TOO_LARGE = b'{"detail":"body larger than %d bytes"}' % MAX_BODY_BYTES


class EvaluateFastPath:
    def __init__(self, app: ASGIApp, service: GateService, keeper: Gatekeeper) -> None:
        self.app = app
        self._service = service
        self._keeper = keeper

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/evaluate" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = None
        authorization = []
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"authorization":
                authorization.append(value.decode("latin-1"))
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
        status, payload = await evaluate_body(self._service, b"".join(chunks))
        await _answer(send, status, payload)


async def _answer(send: Send, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(payload)).encode())]
    if extra:
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
