"""Found by a second probe of the one gate: an asyncio caller cancelled while its order waits
for the gate at the gate's actor books nothing that no one hears of."""

from __future__ import annotations

import asyncio
import threading

import pytest

from supervisor import AccountSnapshot
from tests.helpers import GateHold, order


@pytest.fixture
def sup(sup_unlimited):
    sup_unlimited.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))
    return sup_unlimited


def test_a_cancelled_async_caller_books_nothing_no_one_hears_of(sup):
    held, release = threading.Event(), threading.Event()

    async def scenario():
        sup.gate_ref.tell(GateHold(held, release))  # the gate busy: the loop's order goes to the actor
        await asyncio.get_running_loop().run_in_executor(None, held.wait, 5)
        task = asyncio.ensure_future(sup.evaluate_async(order(quantity=400.0, order_id="gone"), timeout=5))
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    asyncio.run(scenario())
    after = sup.evaluate(order(quantity=400.0, order_id="next"))
    stats = sup.health()["gate"]
    assert stats["reservations"] == 1 and after.decision == "allow", after  # only 'next' booked
