"""EssWatcherActor: the Emergency Stop System's HTTP status and a local kill-switch file.

Any active source halts. An unreadable source (HTTP error, `"available": false`,
no `active` field, a kill-switch folder that is missing or unreadable) is
unknown, which the gate treats as stale: a clear needs a good answer from every
source. Each reading goes on the `EssBoard` first, then to the gate as a
message, so a halt reaches orders already queued at the gate.
"""

from __future__ import annotations

import os
import stat

import httpx

from actors.base import PolledSourceActor
from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import EssConfig
from supervisor.core.messages import EssSourceStatus, EssState
from supervisor.logs import get_logger
from supervisor.sources.http import FailureLog, FetchError, fetch_json
from supervisor.sources.upstream import parse_ess_status, parse_risk_safety_status

__all__ = ["EssWatcherActor", "read_kill_switch"]

log = get_logger("riskgate.ess")


def read_kill_switch(path: str) -> EssSourceStatus:
    """Present = halt (its first line, if any, is the reason); absent (in a
    folder that exists) = clear; anything else is unknown: the folder missing
    or unreadable, a dangling symlink, a FIFO, socket or device at the path.
    Never blocks: a FIFO is not opened, a file is opened non-blocking."""
    name = "kill_switch_file"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            return EssSourceStatus(name, None, f"{path} is a dangling symlink")
        parent = os.path.dirname(path) or "."
        if os.path.isdir(parent):
            return EssSourceStatus(name, False, "absent")
        return EssSourceStatus(name, None, f"folder {parent} missing")
    except OSError as exc:
        return EssSourceStatus(name, None, f"cannot check {path}: {exc.strerror}")
    if stat.S_ISDIR(info.st_mode):
        return EssSourceStatus(name, True, f"kill switch {path} (a folder)")
    if not stat.S_ISREG(info.st_mode):
        return EssSourceStatus(name, None, f"{path} is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        # It exists but cannot be read: present means halt.
        return EssSourceStatus(name, True, f"kill switch {path} (unreadable: {exc.strerror})")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the stat and the open
            return EssSourceStatus(name, None, f"{path} is not a regular file")
        reason = os.read(fd, 200).decode("utf-8", "replace").strip().splitlines()
    except OSError as exc:
        return EssSourceStatus(name, True, f"kill switch {path} (unreadable: {exc.strerror})")
    finally:
        os.close(fd)
    return EssSourceStatus(name, True, f"kill switch {path}" + (f": {reason[0]}" if reason else ""))


class EssWatcherActor(PolledSourceActor):
    def __init__(
        self,
        config: EssConfig,
        clock: Clock,
        gate: GateLink,
        board: EssBoard,
        transport: httpx.BaseTransport | None = None,
        journal: JournalQueue | None = None,
    ) -> None:
        super().__init__(clock, gate, transport, journal)
        self._config = config
        self._board = board
        self._url = f"{config.url}{config.path}" if config.url else None
        self._parse = parse_risk_safety_status if config.contract == "risk_safety" else parse_ess_status
        self._http_failures = FailureLog("riskgate.ess", "ess_http", self.event)
        self._latest: EssState | None = None

    def open_resources(self) -> None:
        if self._url is not None:
            self.open_client(self._config.timeout_s)

    def _read_http(self) -> EssSourceStatus:
        if self._client is None or self._url is None:
            return EssSourceStatus("http", None, "no client")  # only between a stop and a late poll
        try:
            status = self._parse(fetch_json(self._client, self._url, self._config.timeout_s), "http")
        except FetchError as exc:
            self._http_failures.failed(exc.kind, exc.detail, url=self._url)
            return EssSourceStatus("http", None, exc.kind)
        if status.active is None:
            self._http_failures.failed("unusable", status.detail, url=self._url)
        else:
            self._http_failures.succeeded(url=self._url)
        return status

    def poll(self) -> EssState:
        """Read every source once; publish and return the combined state."""
        sources: list[EssSourceStatus] = []
        if self._url is not None:
            sources.append(self._read_http())
        if self._config.kill_switch_file:
            sources.append(read_kill_switch(self._config.kill_switch_file))
        state = EssState.combine(tuple(sources))
        self._gate.tell(self._board.publish(state, self._clock.monotonic()))
        previous = self._latest
        if previous is None or previous.active != state.active:
            self.event("ess_source_changed", "ess_watcher", active=state.active, reason=state.reason)
            level = log.warning if state.active is not False else log.info
            level(
                "ess_changed", active=state.active, previous=previous.active if previous else None, reason=state.reason
            )
        self._latest = state
        return state
