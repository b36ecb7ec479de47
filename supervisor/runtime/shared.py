"""SharedParts: what an instance adds to share state with others (store.backend = "postgresql").

Built by the composition root (supervisor.system) from its parts: the store
(one instance's statements), the keeper (rounds: heartbeat, leases, the shared
halt) and its actor, the listener that wakes it on a control change, the
journal's shipper and its actor, and the account tracker's shared baselines. `start` claims this instance's name (and
checks the schema) before the gate opens; the actors join the runtime's
supervised ones; `stop` returns the leases after the actors have stopped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from actors.messages import Poll
from actors.shared_store import JournalShipperActor, StoreKeeperActor
from supervisor.journal.store import JOURNAL_NAME
from supervisor.runtime.supervision import ActorSpec
from supervisor.shared.baselines import SharedBaselines
from supervisor.shared.keeper import StoreKeeper
from supervisor.shared.listener import ControlListener
from supervisor.shared.shipping import JournalShipper
from supervisor.shared.store import SharedStore
from supervisor.version import __version__

if TYPE_CHECKING:
    from supervisor.clock import Clock
    from supervisor.config import Config
    from supervisor.runtime.wiring import Runtime
    from supervisor.shared.store import Round


class Controls(Protocol):
    """The operator controls (supervisor.ops.controls), as far as the shared store needs them."""

    def share_through(self, store: SharedStore) -> None: ...
    def adopt_shared(self, found: Round, ticket: int | None = None) -> None: ...
    def halt_writes(self) -> int: ...


class Reader(Protocol):
    """The state reader (supervisor.ops.state), as far as the shared store feeds it."""

    shared_status: Callable[[], tuple[float | None, str | None]] | None
    shared_describe: Callable[[], dict[str, Any]] | None

    def readiness(self) -> list[str]: ...


__all__ = ["SharedParts"]

_SHIP_EVERY_S = 1.0


class SharedParts:
    def __init__(self, config: Config, clock: Clock, runtime: Runtime, controls: Controls, reader: Reader) -> None:
        store_cfg = config.store
        if store_cfg.dsn is None:  # the config's loader refuses this; a Config built in code may not
            raise ValueError('store.backend = "postgresql" needs store.dsn')
        self._config = config
        self._runtime = runtime
        gate = runtime.gate
        run = f"{os.getpid():x}-{os.urandom(4).hex()}"
        self.store = SharedStore(store_cfg.dsn, config.instance.name, run, store_cfg.timeout_s, store_cfg.lease_ttl_s)
        self.keeper = StoreKeeper(
            config,
            clock,
            self.store,
            usage=gate.budget_round,
            tell=runtime.link.tell,
            adopt=controls.adopt_shared,
            ticket=controls.halt_writes,
            ready=lambda: not [m for m in reader.readiness() if not m.startswith("store:")],
            event=runtime.event,
        )
        self.listener = ControlListener(store_cfg.dsn, config.instance.name, store_cfg.timeout_s, self.wake)
        self.shipper = JournalShipper(config.state.dir / JOURNAL_NAME, self.store)
        runtime.baseline_share = lambda: SharedBaselines(
            SharedStore(store_cfg.dsn or "", config.instance.name, run, store_cfg.timeout_s, store_cfg.lease_ttl_s)
        )
        controls.share_through(self.store)
        reader.shared_status = self._status
        reader.shared_describe = self.keeper.describe
        gate.on_budget_short = self.wake
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
        ref = self._runtime.supervisor.ref("store_keeper")
        if ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(Poll())

    def start(self) -> None:
        api = self._config.api
        self.store.claim(__version__, f"http://{api.host}:{api.port}" if api.enabled else None)
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        usage = self._runtime.gate.budget_usage(timeout=1.0)  # the gate is shut: what is in flight stays
        in_flight = {} if usage is None else {k: u.reserved_units for k, u in usage.items()}
        if usage is None:  # not read: keep every lease until its TTL rather than return one in use
            return
        self.keeper.leave(in_flight)
