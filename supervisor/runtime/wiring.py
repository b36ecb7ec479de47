"""The running system: which actors, in what order, wired how, watched by whom.

`Runtime` builds the one `Gate` and the `GateLink` every source posts state
through, then the actor specs (the gate's owner first, then the account
tracker, then the pollers), which it hands to the `ActorSupervisor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
import pykka

from actors.account_tracker import AccountTrackerActor
from actors.ess_watcher import EssWatcherActor
from actors.gate import GateActor
from actors.messages import Poll
from actors.price_poller import PricePollerActor
from actors.risk_poller import RiskV3PollerActor
from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_counters import GateCounters
from supervisor.channels.gate_link import GateLink
from supervisor.channels.halt_watch import HaltWatch
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.gate_state import GateState
from supervisor.core.messages import ConfigChanged, EssState
from supervisor.gate import Gate, GateView, Posted
from supervisor.heap import pace_collector
from supervisor.logs import get_logger
from supervisor.runtime.supervision import ActorSpec, ActorSupervisor
from supervisor.sources.baseline_store import BaselineShare
from supervisor.sources.exchange_prices import ExchangeTickers, open_exchange

__all__ = ["Runtime"]

log = get_logger("riskgate.runtime")


class Runtime:
    # Which gate and gate actor to run: tests put subclasses with test-only hooks here.
    gate_class: type[Gate] = Gate
    gate_actor_class: type[GateActor] = GateActor

    def __init__(
        self,
        config: Config,
        clock: Clock,
        transport: httpx.BaseTransport | None,
        poll_upstreams: bool,
        journal: JournalQueue | None = None,
        first: Sequence[ActorSpec] = (),
    ) -> None:
        """`journal` takes every decision and event; `first` are actors to start
        before the gate and stop after everything (the journal's writer)."""
        self.config = config
        self.clock = clock
        self.transport = transport
        self.poll_upstreams = poll_upstreams
        self.journal = journal if journal is not None else JournalQueue(1, block_when_failing=False)
        self.first = list(first)
        self.later: list[ActorSpec] = []  # started after the sources (the shared store's keeper and shipper)
        # Several instances: each (re)started account tracker shares its baselines through one of these.
        self.baseline_share: Callable[[], BaselineShare] | None = None
        self.board = EssBoard()
        self.counters = GateCounters(config.accounts.accounts) if config.metrics.enabled else None
        self.journal.count_into(self.counters)  # the decisions are counted from the journal (off the decision path)
        self.halts = HaltWatch()
        self.gate = self.gate_class(config, clock, self.board, self.journal, self.counters, self.halts, self._resync)
        self.link = GateLink(clock, self.gate)
        self.supervisor = ActorSupervisor(clock, config.supervision, self.event)

    def event(self, kind: str, source: str, account: str | None = None, **detail: Any) -> None:
        """An event for the journal (never waits)."""
        self.journal.event(self.clock.now(), kind, source, account, **detail)

    def specs(self) -> list[ActorSpec]:
        cfg, clock, link, transport, journal = self.config, self.clock, self.link, self.transport, self.journal
        # Restart-only sections come from `cfg`; a restarted tracker gets the reloaded config.
        specs = [
            *self.first,
            ActorSpec(
                "gate",
                lambda: self.gate_actor_class.start(self.gate),
                # Given up on (stuck or dead): no order passes until its successor opens the gate.
                on_given_up=lambda _ref: self.gate.close(),
                poll=Poll,  # applies posted state, journals expiries
                poll_interval_s=cfg.supervision.check_interval_s,
                state_age=self._gate_ages,
            ),
            ActorSpec(
                "account_tracker",
                lambda: AccountTrackerActor.start(
                    self.config, clock, link, transport, journal, self.baseline_share() if self.baseline_share else None
                ),
                poll=Poll,  # polls snapshots when snapshot_url is set; takes up operator-set baselines
                poll_interval_s=cfg.accounts.poll_interval_s,
                state_age=self._oldest_account_age,
            ),
        ]
        if self.poll_upstreams:
            specs += [
                ActorSpec(
                    "risk_v3_poller",
                    lambda: RiskV3PollerActor.start(cfg.risk_v3, clock, link, transport, journal),
                    poll=Poll,
                    poll_interval_s=cfg.risk_v3.poll_interval_s,
                    state_age=lambda: self.link.age("risk_v3"),
                ),
                ActorSpec(
                    "ess_watcher",
                    lambda: EssWatcherActor.start(cfg.ess, clock, link, self.board, transport, journal),
                    poll=Poll,
                    poll_interval_s=cfg.ess.poll_interval_s,
                    state_age=self._ess_age,
                ),
            ]
            prices = cfg.prices
            if prices.enabled:
                # An exchange's tickers through ccxt (opened here: a missing ccxt stops the start, saying so).
                tickers = None
                if prices.exchange is not None:
                    exchange = open_exchange(prices.exchange, prices.timeout_s)
                    tickers = ExchangeTickers(exchange, cfg.priced_symbols, prices.max_age_s)
                specs.append(
                    ActorSpec(
                        "price_poller",
                        lambda: PricePollerActor.start(self.config, clock, link, transport, journal, tickers),
                        poll=Poll,
                        poll_interval_s=prices.poll_interval_s,
                        state_age=lambda: self.link.age("prices"),
                    )
                )
        return specs + self.later

    # -- life cycle -----------------------------------------------------------------
    def seed(self, state: GateState, recalled_at: tuple[float, datetime] | None = None) -> None:
        """What the gate starts from (the journal's recent approvals, recalled as of
        `recalled_at`), before `start`."""
        self.gate.seed(state, recalled_at)

    def _resync(self) -> list[Posted]:
        """The latest state of every kind and the running config (the gate's resync)."""
        now = self.clock.monotonic()
        return [*(Posted(m, sent) for m, sent in self.link.snapshot()), Posted(ConfigChanged(self.config), now)]

    def start(self) -> None:
        pace_collector(self.config.gate.gc_young_threshold)
        self.gate.arm()
        self.halts.start()
        self.supervisor.start(self.specs())

    def stop(self) -> None:
        self.gate.shut()  # first: no order passes while the rest stops, whatever restarts meanwhile
        if not self.gate.quiesce(min(5.0, self.config.gate.evaluate_timeout_s)):
            log.warning("gate_busy_at_stop", effect="the decision under way answers GATE_UNAVAILABLE")
        self.supervisor.stop()
        self.halts.stop()

    # -- health -----------------------------------------------------------------------
    def _ess_age(self) -> float | None:
        current = self.board.current
        return None if current is None else round(self.clock.monotonic() - current.received, 3)

    def _oldest_account_age(self) -> float | None:
        ages = self.link.account_ages()
        return round(max(ages.values()), 3) if ages else None

    def _gate_ages(self) -> dict[str, float | None]:
        risk = self.link.age("risk_v3")
        return {
            "risk_v3": None if risk is None else round(risk, 3),
            "ess": self._ess_age(),
            "oldest_account": self._oldest_account_age(),
            **({"prices": self._round_age(self.link.age("prices"))} if self.config.prices.enabled else {}),
        }

    @staticmethod
    def _round_age(age: float | None) -> float | None:
        return None if age is None else round(age, 3)

    def publish_ess(self, state: EssState) -> None:
        """ESS readings (one per source in `state.sources`): on the board first (every
        decision reads it), then posted as state. A reading replaces only its own
        source's: a clear from one source never lifts another's halt."""
        combined = self.board.publish(state, self.clock.monotonic())
        self.link.tell(combined)

    def reconfigure(self, config: Config) -> None:
        """Swap a reloaded config in: the gate (between two decisions), the
        tracker, and whatever a restart starts from now on."""
        self.config = config
        pace_collector(config.gate.gc_young_threshold)
        if self.counters is not None:
            self.counters.accounts = frozenset(config.accounts.accounts)  # the labels the metrics may use
        self.gate.reconfigure(config)
        for name in ("account_tracker", "price_poller"):
            ref = self.supervisor.ref(name)
            if ref is not None:
                with contextlib.suppress(pykka.ActorDeadError):  # restarted from self.config
                    ref.tell(ConfigChanged(config))

    def gate_view(self, timeout: float = 1.0) -> GateView | None:
        """What the gate holds (None: not running, or its lock busy past `timeout`)."""
        return None if self.supervisor.ref("gate") is None else self.gate.view(timeout)

    def gate_stats(self, reset: bool, timeout: float = 1.0) -> dict[str, Any] | None:
        return None if self.supervisor.ref("gate") is None else self.gate.stats(reset, timeout)
