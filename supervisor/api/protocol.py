"""uvicorn's HTTP protocol with a deadline for every request.

uvicorn closes a keep-alive connection that stays quiet after a response, but
not one that never sends a request, nor one that sends half a request and
stops: such connections stayed open for ever, each counting against
`api.max_connections`, so a few of them locked operators out (503 on `/healthz`
and `POST /v1/halt`). Here a whole request (headers and body) must arrive
within `api.request_timeout_s` of the connection opening or the last response
ending; otherwise the connection is closed (an app still waiting for the body
hears the client went away).

This subclasses uvicorn's own `HttpToolsProtocol` and uses the hooks it
defines (`connection_made`, `on_message_complete`, `on_response_complete`,
`connection_lost`, `loop`, `transport`); tests/adversarial/test_probe_connections.py pins them.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["with_request_deadline"]


class _DeadlineProtocol(HttpToolsProtocol):
    request_timeout_s = 5.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()  # the whole request is in: the app's answer is not bounded here
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def with_request_deadline(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, with `seconds` per request."""
    return type("RequestDeadlineProtocol", (_DeadlineProtocol,), {"request_timeout_s": seconds})
