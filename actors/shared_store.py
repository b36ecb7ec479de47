"""The shared store's actors (store.backend = "postgresql", docs/scale-out.md): thin
owners of a keeper's rounds and of the journal's shipping, each on a `Poll`."""

from __future__ import annotations

from actors.base import SupervisedActor
from actors.messages import Poll
from supervisor.shared.keeper import StoreKeeper
from supervisor.shared.shipping import JournalShipper

__all__ = ["JournalShipperActor", "StoreKeeperActor"]


class StoreKeeperActor(SupervisedActor):
    """Each `Poll` is one round: heartbeat, leases, the shared halt (supervisor.shared.keeper)."""

    def __init__(self, keeper: StoreKeeper) -> None:
        super().__init__()
        self._keeper = keeper

    def on_receive(self, message: object) -> object:
        if isinstance(message, Poll):
            return self._keeper.round()
        return None


class JournalShipperActor(SupervisedActor):
    """Each `Poll` ships what the local journal wrote since the last (supervisor.shared.shipping)."""

    def __init__(self, shipper: JournalShipper) -> None:
        super().__init__()
        self._shipper = shipper

    def on_receive(self, message: object) -> object:
        if isinstance(message, Poll):
            sent = self._shipper.ship()
            if self._shipper.behind:
                # A backlog (after an outage, under load): the next batch after whatever waits
                # (a ping), so that a long catch-up never looks like a stuck actor.
                self.actor_ref.tell(Poll())
            return sent
        return None
