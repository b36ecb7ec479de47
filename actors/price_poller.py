"""PricePollerActor: polls the prices source ([prices]) and pushes each usable answer to the gate.

`GET {prices.url}/prices`, or an exchange's public tickers through ccxt
(`prices.exchange`). A failed fetch (refused, timed out, 5xx, non-JSON, a body
over 1 MiB, no timestamp) pushes nothing: the gate's prices age and every symbol
the source covers blocks opening orders (PRICE_REFERENCE_STALE). A price that is
not a plain positive number within prices.max_plausible_usd is dropped: that
symbol is unpriced, the others trade. Each cause is logged once per outage.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from actors.base import PolledSourceActor
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.messages import ConfigChanged, PriceSnapshot
from supervisor.logs import get_logger
from supervisor.sources.exchange_prices import ExchangeError, ExchangeTickers
from supervisor.sources.http import FailureLog, FetchError, fetch_json
from supervisor.sources.upstream import UpstreamError, parse_prices

__all__ = ["PricePollerActor"]

log = get_logger("riskgate.prices")


class PricePollerActor(PolledSourceActor):
    def __init__(
        self,
        config: Config,
        clock: Clock,
        gate: GateLink,
        transport: httpx.BaseTransport | None = None,
        journal: JournalQueue | None = None,
        tickers: ExchangeTickers | None = None,
    ) -> None:
        """`tickers`: the exchange source (prices.exchange); None: `GET {prices.url}/prices`."""
        super().__init__(clock, gate, transport, journal)
        self._config = config.prices
        self._symbols = frozenset(config.symbols)
        self._tickers = tickers
        self._where = f"{self._config.url}/prices" if tickers is None else f"ccxt:{self._config.exchange}"
        self._failures = FailureLog("riskgate.prices", "prices", self.event)
        self._dropped: tuple[str, ...] = ()
        self._fetching: threading.Thread | None = None  # an exchange call past its deadline, still running

    def open_resources(self) -> None:
        if self._tickers is None:
            self.open_client(self._config.timeout_s)

    def poll(self) -> PriceSnapshot | None:
        """Fetch once; push and return the snapshot, or None when unusable."""
        cfg = self._config
        try:
            if self._tickers is not None:
                data = self._bounded_fetch(self._tickers, cfg.timeout_s)
            elif self._client is None:
                return None  # only between a stop and a late poll
            else:
                data = fetch_json(self._client, self._where, cfg.timeout_s)
            snap = parse_prices(data, self._symbols, cfg.max_plausible_usd)
        except FetchError as exc:
            self._failures.failed(exc.kind, exc.detail, url=self._where)
            return None
        except ExchangeError as exc:
            self._failures.failed("exchange", str(exc), url=self._where)
            return None
        except UpstreamError as exc:
            self._failures.failed("unparsable", str(exc), url=self._where)
            return None
        self._failures.succeeded(url=self._where)
        if snap.dropped != self._dropped:
            if snap.dropped:
                log.warning("prices_dropped", symbols=list(snap.dropped), effect="unpriced: opening orders block")
            self._dropped = snap.dropped
        self._gate.tell(snap)
        return snap

    def _bounded_fetch(self, tickers: ExchangeTickers, timeout_s: float) -> Any:
        """ccxt's own timeout is per request and a hung call holds whoever made it: the call runs
        on a thread of its own, waited for `timeout_s` (a call still under way is never doubled)."""
        if self._fetching is not None and self._fetching.is_alive():
            raise ExchangeError("the exchange has not answered the last poll yet")
        box: dict[str, Any] = {}
        now = self._clock.now()

        def call() -> None:
            try:
                box["data"] = tickers.fetch(now)
            except Exception as exc:  # noqa: BLE001 - handed to the poll: ExchangeError or anything, said
                box["error"] = exc

        thread = threading.Thread(target=call, name="price-poller-fetch", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            self._fetching = thread
            raise ExchangeError(f"no answer within prices.timeout_s={timeout_s:g}")
        self._fetching = None
        error = box.get("error")
        if isinstance(error, ExchangeError):
            raise error
        if error is not None:
            raise ExchangeError(f"{type(error).__name__}: {str(error)[:200]}")
        return box.get("data")

    def on_message(self, message: object) -> object:
        if isinstance(message, ConfigChanged):  # a reload: its symbols and bounds from the next poll
            config = message.config
            self._config = config.prices  # its url and timing are restart-only: the same as before
            self._symbols = frozenset(config.symbols)
            if self._tickers is not None:
                self._tickers.reconfigure(config.priced_symbols, config.prices.max_age_s)
        return None

    def failure_cause(self) -> str | None:
        return self._failures.cause
