"""A TCP proxy that forwards until told to stall, then accepts bytes and never answers."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Any


class StallingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stalled = threading.Event()
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
                    sel.register(client, selectors.EVENT_READ, upstream)
                    sel.register(upstream, selectors.EVENT_READ, client)
                    continue
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(src)
                    continue
                if not self._stalled.is_set():
                    with contextlib.suppress(OSError):
                        key.data.sendall(data)
