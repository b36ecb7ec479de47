"""SharedBaselines: the account tracker's baselines through the shared store.

Every instance tracks every account from the same snapshots, but each one's
baselines are its own view: one started mid-day would count losses from its
first equity, one restarted after a loss limit tripped would have forgotten
the trip. Shared, they are one desk's record: the day's and week's start
equity, the week's peak and the loss limits' trip times (a cooldown) are the
rows the store holds, and an instance offering its own gets back the row that
holds (supervisor.shared.schema, version 2, says which wins).

The tracker (actors.account_tracker) calls this from its own thread; each
call is one statement bounded by `store.timeout_s`, and raises
`SharedStoreError` when the store cannot be read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from supervisor.logs import get_logger
from supervisor.shared.db import SharedStoreError
from supervisor.shared.store import SharedStore
from supervisor.sources.baseline_store import Baseline

__all__ = ["SharedBaselines", "operator_set_shared", "read_shared"]

log = get_logger("riskgate.shared")
_RECENT_DAYS = 8  # a first read takes the rows of periods begun this long ago or later (a week and a day)

Row = tuple[str, str, Baseline]  # account, period (day | week | peak | day_trip | week_trip), the baseline


class SharedBaselines:
    """The tracker's `BaselineShare` (supervisor.sources.baseline_store) on a `SharedStore`."""

    def __init__(self, store: SharedStore) -> None:
        self._store = store
        self._mark: str | None = None

    def merge(self, rows: Sequence[Row], at: datetime) -> list[Row]:
        """Offer `rows` (set at `at`); the rows that hold for them. A row with a value that is
        not a finite number is never offered."""
        offered = [
            {
                "account": account,
                "period": period,
                "period_start": b.period_start.isoformat(),
                "equity": b.equity,
                "source": b.source,
                "set_at": at.isoformat(),
            }
            for account, period, b in rows
            if b.equity is None or math.isfinite(b.equity)
        ]
        if not offered:
            return []
        return [_row(doc) for doc in self._store.merge_baselines(offered)]

    def changes(self, since: datetime) -> list[Row]:
        """Rows written since the last call (the first: every row of a period begun at `since` or
        later). A row that cannot be read is left out, said once, and never stops the others."""
        docs, mark = self._store.baseline_changes(self._mark, since)
        rows = []
        for doc in docs:
            try:
                rows.append(_row(doc))
            except SharedStoreError as exc:
                log.error("shared_baseline_unreadable", error=str(exc)[:300])
        self._mark = mark
        return rows

    def last_equities(self) -> dict[str, tuple[float, datetime]]:
        return self._store.last_equities()

    def save_last_equities(self, items: dict[str, tuple[float, datetime]]) -> None:
        if items:
            self._store.save_last_equities(items)

    def close(self) -> None:
        self._store.close()


def _row(doc: Any) -> Row:
    try:
        equity = doc["equity"]
        if equity is not None and not math.isfinite(float(equity)):
            raise ValueError(f"equity {equity!r} is not a finite number")
        start = datetime.fromtimestamp(float(doc["period_start"]), UTC)
        return (
            str(doc["account"]),
            str(doc["period"]),
            Baseline(start, None if equity is None else float(equity), str(doc["source"])),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise SharedStoreError(f"a baseline row the store answered cannot be read: {exc}") from exc


def operator_set_shared(
    store: SharedStore, account: str, equities: dict[str, float], starts: dict[str, datetime], by: str, now: datetime
) -> list[Row]:
    """An operator's baselines (`riskgate baseline set`) written to the shared store: every
    instance takes them up at its tracker's next poll. The rows that hold (a later operator's
    word, written meanwhile, holds over this one). Raises `SharedStoreError`."""
    try:
        store.check_schema()
        rows = [(account, p, Baseline(starts[p], e, f"operator:{by}")) for p, e in equities.items()]
        return SharedBaselines(store).merge(rows, now)
    finally:
        store.close()


def read_shared(store: SharedStore, now: datetime) -> dict[tuple[str, str], Baseline]:
    """The latest baseline of each (account, period) begun by `now` in the shared store
    (`riskgate baseline show`)."""
    try:
        store.check_schema()
        latest: dict[tuple[str, str], Baseline] = {}
        for a, p, b in SharedBaselines(store).changes(now - timedelta(days=_RECENT_DAYS)):
            held = latest.get((a, p))
            if b.period_start <= now and (held is None or b.period_start > held.period_start):
                latest[(a, p)] = b
        return latest
    finally:
        store.close()
