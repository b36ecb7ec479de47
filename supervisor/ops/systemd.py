"""systemd's notify protocol (sd_notify(3)), for `Type=notify` with `WatchdogSec=`.

A few lines over the datagram socket systemd names in `$NOTIFY_SOCKET`:
`READY=1` once riskgate serves (its gate open, the API listening), `STATUS=`
with what an operator would want in `systemctl status` (TRADING, or why not),
`WATCHDOG=1` every half watchdog period while the gate answers (a hung gate
stops feeding it, and systemd restarts the process), `STOPPING=1` at the end.
Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET") or None
        # An abstract socket is named with a leading "@" (a NUL byte on the wire).
        self._address = None if path is None else "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_s: float | None = None
        usec, owner = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        mine = owner is None or owner == str(os.getpid() if pid is None else pid)
        if usec is not None and usec.isdigit() and int(usec) > 0 and mine:
            self.watchdog_s = int(usec) / 1_000_000
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` lines in one datagram; False outside systemd or when it cannot be sent."""
        if self._address is None:
            return False
        payload = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(payload)
        except OSError:
            return False  # systemd went away or refuses: nothing riskgate can do about it
        return True

    def status(self, text: str) -> None:
        """`STATUS=text`, sent only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text[:200]}")
