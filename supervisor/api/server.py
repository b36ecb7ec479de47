"""uvicorn on its own thread, beside the actors.

The socket is bound here, on the caller's thread, so a taken port fails
`start()` at once with the OS's reason, and `port=0` is known before the
first request. uvicorn installs no signal handlers off the main thread: the
process's own (SIGTERM, SIGHUP) stay with `riskgate run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading

import uvicorn

from supervisor.api.app import build_app
from supervisor.api.fast import EvaluateFastPath
from supervisor.api.order_socket import OrderSocket, OrderSocketError
from supervisor.api.protocol import with_request_deadline
from supervisor.api.service import Decider, GateService
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger

__all__ = ["ApiServer", "ApiStartError"]

log = get_logger("riskgate.api")


class ApiStartError(RiskgateError):
    """The API could not listen where it was told to."""


class _Server(uvicorn.Server):
    """uvicorn's server, whose loop a stop wakes at once (uvicorn's own looks every 0.1 s)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _woken: asyncio.Event | None = None

    async def main_loop(self) -> None:  # uvicorn's, but waiting on an event as well as the clock
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def wake(self) -> None:
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: nothing to wake
                loop.call_soon_threadsafe(woken.set)


class ApiServer:
    def __init__(self, service: GateService, host: str, port: int, decider: Decider | None = None) -> None:
        """`decider` answers the orders (default: `service`): the composition root hands
        the API what answers orders directly, so an order's path skips the facade."""
        self.host = host
        self.port = port
        app = build_app(service, decider)
        self._app = EvaluateFastPath(app, decider or service, app.state.gatekeeper)
        api = service.config.api
        self._max_connections = api.max_connections
        self._reserve = api.operator_reserve
        self._request_timeout_s = api.request_timeout_s
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        # Orders over a persistent Unix socket (supervisor.api.order_socket), beside the HTTP listener.
        self.order_socket = (
            OrderSocket(decider or service, app.state.gatekeeper, api.order_socket) if api.order_socket else None
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ApiServer:
        """Bind (if not yet bound) and serve."""
        if self._thread is not None:
            return self
        if self._socket is None:
            self.bind()
        return self._serve()

    def bind(self) -> ApiServer:
        """Take the port now (an error names it); serving starts with `start()`."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(256)
        except OSError as exc:
            sock.close()
            raise ApiStartError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = sock.getsockname()[1]
        self._socket = sock
        if self.order_socket is not None:
            try:
                self.order_socket.bind()
            except OrderSocketError as exc:
                sock.close()
                self._socket = None
                raise ApiStartError(str(exc)) from exc
        return self

    def _serve(self) -> ApiServer:
        assert self._socket is not None  # noqa: S101 - bound by start()
        sock = self._socket
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            # Beyond max_connections only probes and operators' controls are served (the fast
            # path says 503 to the rest); beyond the reserve too, everything gets 503 at once.
            limit_concurrency=self._max_connections + self._reserve,
            timeout_keep_alive=5,
            http=with_request_deadline(self._request_timeout_s),  # idle or half-sent: closed
        )
        self._server = _Server(config)
        state = self._server.server_state
        self._app.connections = lambda: len(state.connections)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="riskgate-api", daemon=True
        )
        self._thread.start()
        if self.order_socket is not None:
            self.order_socket.start()
        log.info("api_serving", url=self.url)
        if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
            log.warning(
                "api_not_loopback",
                url=self.url,
                detail="the API is reachable from other hosts, without TLS: put a TLS proxy in front, "
                'and keep api.execution_access and api.read_access at "token"',
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.order_socket is not None:
            self.order_socket.stop(timeout)
        if self._server is not None:
            self._server.should_exit = True
            self._server.wake()  # at once, not at its next tick
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
