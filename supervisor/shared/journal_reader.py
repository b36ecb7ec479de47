"""Every instance's journal, as shipped to the shared store: what `riskgate journal`
reads with store.backend = "postgresql" (the same queries as the local file's
reader, each row naming the instance that decided it)."""

from __future__ import annotations

from typing import Any

from supervisor.journal.store import Query, decision_filters
from supervisor.shared.db import SharedStoreError, connect, deadline, psycopg_module, said
from supervisor.shared.schema import require_current

__all__ = ["SharedJournalReader"]

_FAR = 2**62


class SharedJournalReader:
    def __init__(self, dsn: str, timeout_s: float) -> None:
        self._timeout_s = max(timeout_s, 5.0)  # a person waits for a query longer than a round
        self._conn = connect(dsn, self._timeout_s, "journal-reader")
        try:
            with deadline(self._conn, self._timeout_s):
                require_current(self._conn)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        psycopg = psycopg_module()
        try:
            with deadline(self._conn, self._timeout_s):
                cur = self._conn.execute(sql, args)
                names = [d.name for d in cur.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise SharedStoreError(f"shared journal: {said(exc)}") from exc

    def decisions(self, q: Query) -> list[dict[str, Any]]:
        """Matching decisions of every instance, newest first."""
        where, args = decision_filters(q, "%s")
        # Column names and operators come from decision_filters; every value is bound.
        sql = "SELECT * FROM decisions" + (f" WHERE {' AND '.join(where)}" if where else "")  # noqa: S608 - see above
        sql += " ORDER BY ts_us DESC, instance, seq DESC LIMIT %s"
        return self._rows(sql, (*args, q.limit))

    def events(
        self, since_us: int | None = None, until_us: int | None = None, limit: int = 100, account: str | None = None
    ) -> list[dict[str, Any]]:
        """As JournalReader.events, over every instance's."""
        span = (since_us if since_us is not None else 0, until_us if until_us is not None else _FAR)
        if account is None:
            return self._rows(
                "SELECT * FROM events WHERE ts_us >= %s AND ts_us < %s ORDER BY ts_us DESC, seq DESC LIMIT %s",
                (*span, limit),
            )
        return self._rows(
            "SELECT * FROM events WHERE ts_us >= %s AND ts_us < %s AND (account = %s OR account IS NULL)"
            " ORDER BY ts_us DESC, seq DESC LIMIT %s",
            (*span, account, limit),
        )

    def stats(self, since_us: int | None = None, until_us: int | None = None) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT account, decision, reason_code, COUNT(*) AS n FROM decisions WHERE ts_us >= %s AND ts_us < %s"
            " GROUP BY account, decision, reason_code ORDER BY account, n DESC",
            (since_us if since_us is not None else 0, until_us if until_us is not None else _FAR),
        )
