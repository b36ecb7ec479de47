"""RiskV3PollerActor: polls Global Risk v3 and pushes each usable signal to the gate.

A failed fetch (404 before the first evaluation, 5xx, timeout, refused or
dropped connection, a body over 1 MiB, non-JSON, a missing or unknown
risk_level) pushes nothing, so the gate's copy ages and it fails closed. Each
cause is logged once, not once per poll; the recovery is logged too.
"""

from __future__ import annotations

import httpx

from actors.base import PolledSourceActor
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import RiskV3Config
from supervisor.core.messages import RiskSignal
from supervisor.logs import get_logger
from supervisor.sources.http import FailureLog, FetchError, fetch_json
from supervisor.sources.upstream import UpstreamError, parse_risk_signal

__all__ = ["RiskV3PollerActor"]

log = get_logger("riskgate.risk_v3")


class RiskV3PollerActor(PolledSourceActor):
    def __init__(
        self,
        config: RiskV3Config,
        clock: Clock,
        gate: GateLink,
        transport: httpx.BaseTransport | None = None,
        journal: JournalQueue | None = None,
    ) -> None:
        super().__init__(clock, gate, transport, journal)
        self._config = config
        self._url = f"{config.url}/risk/global"
        self._failures = FailureLog("riskgate.risk_v3", "risk_v3", self.event)
        self._signal_stale = False
        self._skewed = False

    def open_resources(self) -> None:
        self.open_client(self._config.timeout_s)

    def poll(self) -> RiskSignal | None:
        """Fetch once; push and return the signal, or None when unusable."""
        if self._client is None:
            return None  # only between a stop and a late poll
        try:
            signal = parse_risk_signal(fetch_json(self._client, self._url, self._config.timeout_s))
        except FetchError as exc:
            self._failures.failed(exc.kind, exc.detail, url=self._url)
            return None
        except UpstreamError as exc:
            self._failures.failed("unparsable", str(exc), url=self._url)
            return None
        self._failures.succeeded(url=self._url)
        self._note_signal_age(signal)
        self._gate.tell(signal)
        return signal

    def _note_signal_age(self, signal: RiskSignal) -> None:
        # The gate blocks on the signal's own age too; this only says why, once.
        age = (self._clock.now() - signal.timestamp).total_seconds()
        skewed = age < -self._config.max_clock_skew_s
        if skewed and not self._skewed:
            log.warning(
                "risk_v3_clock_skew", signal_ahead_s=round(-age, 1), max_clock_skew_s=self._config.max_clock_skew_s
            )
        elif not skewed and self._skewed:
            log.info("risk_v3_clock_skew_cleared", signal_age_s=round(age, 1))
        self._skewed = skewed
        stale = age > self._config.max_signal_age_s
        if stale and not self._signal_stale:
            log.warning(
                "risk_v3_signal_stale", signal_age_s=round(age, 1), max_signal_age_s=self._config.max_signal_age_s
            )
        elif not stale and self._signal_stale:
            log.info("risk_v3_signal_fresh", signal_age_s=round(age, 1))
        self._signal_stale = stale

    def failure_cause(self) -> str | None:
        return self._failures.cause
