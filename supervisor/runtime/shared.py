"""SharedParts: what an instance adds to share state with others (store.backend = "postgresql").

Built by the composition root (supervisor.system) from its parts: the store
(one instance's statements), the keeper (rounds: heartbeat, leases, the shared
halt) and its actor, the listener that wakes it on a control change, and the
journal's shipper and its actor. `start` claims this instance's name (and
checks the schema) before the gate opens; the actors join the runtime's
supervised ones; `stop` returns the leases after the actors have stopped.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import pykka

from actors.messages import Poll
from actors.shared_store import JournalShipperActor, StoreKeeperActor
from supervisor.journal.store import JOURNAL_NAME
from supervisor.runtime.supervision import ActorSpec
from supervisor.shared.keeper import StoreKeeper
from supervisor.shared.listener import ControlListener
from supervisor.shared.shipping import JournalShipper
from supervisor.shared.store import SharedStore
from supervisor.version import __version__

if TYPE_CHECKING:
    from supervisor.system import System

__all__ = ["SharedParts"]

_SHIP_EVERY_S = 1.0


class SharedParts:
    def __init__(self, system: System) -> None:
        config = system.config
        store_cfg = config.store
        if store_cfg.dsn is None:  # the config's loader refuses this; a Config built in code may not
            raise ValueError('store.backend = "postgresql" needs store.dsn')
        self._system = system
        runtime = system.runtime
        run = f"{os.getpid():x}-{os.urandom(4).hex()}"
        self.store = SharedStore(store_cfg.dsn, config.instance.name, run, store_cfg.timeout_s, store_cfg.lease_ttl_s)
        self.keeper = StoreKeeper(
            config,
            system.clock,
            self.store,
            usage=system.gate.budget_usage,
            tell=runtime.link.tell,
            adopt=system.controls.adopt_shared,
            ready=lambda: not [m for m in system.state_reader.readiness() if not m.startswith("store:")],
            event=runtime.event,
        )
        self.listener = ControlListener(store_cfg.dsn, config.instance.name, store_cfg.timeout_s, self.wake)
        self.shipper = JournalShipper(config.state.dir / JOURNAL_NAME, self.store)
        system.controls.share_through(self.store)
        system.state_reader.shared_status = self._status
        system.state_reader.shared_describe = self.keeper.describe
        system.gate.on_budget_short = self.wake
        runtime.later += [
            ActorSpec(
                "store_keeper",
                lambda: StoreKeeperActor.start(self.keeper),
                poll=Poll,
                poll_interval_s=store_cfg.poll_interval_s,
                state_age=lambda: self._status()[0],
            ),
        ]
        if config.journal.enabled:
            runtime.later.append(
                ActorSpec(
                    "journal_shipper",
                    lambda: JournalShipperActor.start(self.shipper),
                    poll=Poll,
                    poll_interval_s=_SHIP_EVERY_S,
                )
            )

    def _status(self) -> tuple[float | None, str | None]:
        st = self.keeper.status()
        return st.confirmed_age_s, st.error

    def wake(self) -> None:
        """A round now (a control changed, or the gate ran short of budget): at most one waits."""
        if self.keeper.woken:
            return
        self.keeper.woken = True
        ref = self._system.runtime.supervisor.ref("store_keeper")
        if ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(Poll())

    def start(self) -> None:
        api = self._system.config.api
        self.store.claim(__version__, f"http://{api.host}:{api.port}" if api.enabled else None)
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        self.keeper.leave()

    def describe(self) -> dict[str, Any]:
        return self.keeper.describe()
