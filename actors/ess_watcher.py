"""EssWatcherActor: the Emergency Stop System's HTTP status and a local kill-switch file.

Any active source halts. An unreadable source (HTTP error, `"available": false`,
no `active` field, a kill-switch folder that is missing or unreadable) is
unknown, which the gate treats as stale: a clear needs a good answer from every
source. Each reading goes on the `EssBoard` first, then to the gate as a
message, so a halt reaches orders already queued at the gate.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from actors.base import PolledSourceActor
from supervisor.clock import Clock
from supervisor.config import EssConfig
from supervisor.ess_board import EssBoard
from supervisor.gate_link import GateLink
from supervisor.http import FailureLog, FetchError, fetch_json
from supervisor.logs import get_logger
from supervisor.messages import EssSourceStatus, EssState
from supervisor.upstream import parse_ess_status, parse_risk_safety_status

__all__ = ["EssWatcherActor", "read_kill_switch"]

log = get_logger("riskgate.ess")


def read_kill_switch(path: str) -> EssSourceStatus:
    """Present = halt (its first line, if any, is the reason); absent = clear;
    anything else (folder missing, no permission) = unknown."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            reason = f.read(200).decode("utf-8", "replace").strip().splitlines()
        return EssSourceStatus("kill_switch_file", True, f"kill switch {path}" + (f": {reason[0]}" if reason else ""))
    except FileNotFoundError:
        if p.parent.is_dir():
            return EssSourceStatus("kill_switch_file", False, "absent")
        return EssSourceStatus("kill_switch_file", None, f"folder {p.parent} missing")
    except IsADirectoryError:
        return EssSourceStatus("kill_switch_file", True, f"kill switch {path} (a folder)")
    except OSError as exc:
        # It exists but cannot be read: present means halt.
        if p.exists():
            return EssSourceStatus("kill_switch_file", True, f"kill switch {path} (unreadable: {exc.strerror})")
        return EssSourceStatus("kill_switch_file", None, f"cannot check {path}: {exc.strerror}")


class EssWatcherActor(PolledSourceActor):
    def __init__(
        self,
        config: EssConfig,
        clock: Clock,
        gate: GateLink,
        board: EssBoard,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(clock, gate, transport)
        self._config = config
        self._board = board
        self._url = f"{config.url}{config.path}" if config.url else None
        self._parse = parse_risk_safety_status if config.contract == "risk_safety" else parse_ess_status
        self._http_failures = FailureLog("riskgate.ess", "ess_http")
        self._latest: EssState | None = None

    def open_resources(self) -> None:
        if self._url is not None:
            self.open_client(self._config.timeout_s)

    def _read_http(self) -> EssSourceStatus:
        assert self._client is not None and self._url is not None
        try:
            status = self._parse(fetch_json(self._client, self._url), "http")
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
        self._board.publish(state, self._clock.monotonic())
        self._gate.tell(state)
        previous = self._latest
        if previous is None or previous.active != state.active:
            level = log.warning if state.active is not False else log.info
            level(
                "ess_changed", active=state.active, previous=previous.active if previous else None, reason=state.reason
            )
        self._latest = state
        return state

    def latest(self) -> EssState | None:
        return self._latest
