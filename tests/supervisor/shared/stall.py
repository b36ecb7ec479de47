"""A TCP proxy that forwards until told to stall, then accepts bytes and never answers."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Any


class StallingProxy:
    """`stall()` stops it forwarding; with `stall_on`, so does the first client packet holding
    those bytes (a statement: the server never sees it, the client never hears back)."""

    def __init__(self, target: tuple[str, int], stall_on: bytes | None = None) -> None:
        self._target = target
        self._stall_on = stall_on
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stalled = threading.Event()
        self.stalled = self._stalled
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed.set()
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()
        self._thread.join(5)

    def start(self) -> StallingProxy:
        return self.__enter__()

    def close(self) -> None:
        self.__exit__()

    def stall(self) -> None:
        """From now on nothing is forwarded either way (the connections stay open)."""
        self._stalled.set()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        while not self._closed.is_set():
            try:
                events = sel.select(0.1)
            except (OSError, ValueError):
                return
            for key, _ in events:
                if key.data is None:
                    try:
                        client, _addr = self._listener.accept()
                    except OSError:
                        return
                    upstream = socket.create_connection(self._target)
                    self._sockets += [client, upstream]
                    sel.register(client, selectors.EVENT_READ, (upstream, True))
                    sel.register(upstream, selectors.EVENT_READ, (client, False))
                    continue
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(src)
                    continue
                dst, from_client = key.data
                if from_client and self._stall_on is not None and self._stall_on in data:
                    self._stalled.set()
                if not self._stalled.is_set():
                    with contextlib.suppress(OSError):
                        dst.sendall(data)
