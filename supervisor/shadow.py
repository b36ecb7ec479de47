"""The shadow: a running riskgate's orders decided again under a candidate config, as they come.

`python -m supervisor.shadow JOURNAL RUN CANDIDATE REPORT_FROM POLL_S` runs in a process of
its own (started and stopped by supervisor.ops.shadow.ShadowRunner): it follows what the
journal wrote for the live process's run (`RUN`), decides each order again under CANDIDATE
with the inputs the live gate had (supervisor.replay.Replayer: a real Gate), and writes one
JSON line per disagreement and one per round of progress on stdout. It never touches the
live gate: a shadow that is slow, wrong or dead changes no answer and delays none.

A started shadow decides the run from its first record (its state is built from there) and
reports only the decisions after REPORT_FROM (a shadow restarted by a reload does not say
again what it said). It ends when its stdin closes (its parent is gone) or on SIGTERM.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from supervisor.channels.journal_queue import RecordsLost
from supervisor.config import Config, ConfigError, load_config
from supervisor.journal.sqlite_file import file_identity
from supervisor.logs import configure_logging
from supervisor.replay import (
    DECISION_ROWS,
    INPUT_ROWS,
    NOT_REDECIDED,
    Replayer,
    in_seq,
    order_of_row,
    order_text,
    read_input,
    record_us,
    row_problem,
    same_decision,
)

__all__ = ["follow"]

_SPAN = 20_000  # seqs read per round: a long run caught up in steps, each one read transaction
_NEXT = " AND seq > ? ORDER BY seq LIMIT ?"


def _rows(db: sqlite3.Connection, run: str, after: int) -> Iterator[tuple[bool, tuple[Any, ...]]]:
    """The run's next decisions and inputs after seq `after` (at most _SPAN of each), in seq order,
    from one read transaction (never a decision of one commit with the inputs of another). When
    one table's read is cut at _SPAN rows, only the rows up to its last seq are given: the other
    table's rows beyond it wait for the next round."""
    db.execute("BEGIN")
    try:
        decisions = db.execute(DECISION_ROWS + _NEXT, (run, after, _SPAN)).fetchall()
        inputs = db.execute(INPUT_ROWS + _NEXT, (run, after, _SPAN)).fetchall()
    finally:
        db.execute("COMMIT")
    upto = min(
        decisions[-1][0] if len(decisions) == _SPAN else math.inf,
        inputs[-1][0] if len(inputs) == _SPAN else math.inf,
    )
    for is_input, row in in_seq(inputs, decisions):
        if row[0] > upto:
            return
        yield is_input, row


def _first_seq(db: sqlite3.Connection, run: str) -> int | None:
    """The run's first record in the file (any table), or None when it has none yet."""
    found = [
        db.execute(f"SELECT MIN(seq) FROM {table} WHERE run = ?", (run,)).fetchone()[0]  # noqa: S608 - our tables
        for table in ("decisions", "events", "inputs")
    ]
    seqs = [s for s in found if isinstance(s, int)]
    return min(seqs) if seqs else None


def follow(
    journal: Path,
    run: str,
    candidate: Config,
    report_from: int,
    out: TextIO,
    wait: Callable[[], bool],
) -> None:
    """Decide the run's orders under `candidate` as the journal gets them; `wait()` is called
    between rounds that found nothing new and returns True to stop."""
    replayer = Replayer(candidate, journal, (run,))  # the live run: no run after it yet
    db: sqlite3.Connection | None = None
    last, decided, disagreed = 0, 0, 0
    said: tuple[int, int, int] | None = None
    identity: tuple[int, int] | None = None
    while True:
        if db is None and journal.exists():
            db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5.0, isolation_level=None)
            identity = file_identity(journal)
        elif db is not None and file_identity(journal) != identity:
            raise ValueError(f"the journal {journal} was replaced or removed: this run's records before it are gone")
        if db is not None and last == 0:
            first = _first_seq(db, run)
            if first is not None and first > 1:
                raise ValueError(f"the journal holds this run only from its record {first}: the shadow cannot "
                                 "rebuild the live state without its start")  # fmt: skip
        found = 0
        if db is not None:
            for is_input, row in _rows(db, run, last):
                found += 1
                last = row[0]
                ts_us = record_us(run, is_input, row)
                if is_input:
                    message = read_input(run, row)
                    if isinstance(message, RecordsLost):
                        raise ValueError(f"the journal lost {message.records} record(s) of this run (its queue was "
                                         "full): the shadow cannot rebuild the live state from here on")  # fmt: skip
                    replayer.apply(ts_us, row[2], message, row[3])
                    continue
                damaged = row_problem(row)
                if damaged is not None:
                    raise ValueError(f"journal decision {row[0]}: {damaged}")
                if row[2] is None or row[7] is None or row[16] in NOT_REDECIDED:
                    continue
                result = replayer.decide(ts_us, row[2], order_of_row(row))
                decided += 1
                if row[0] <= report_from:
                    continue
                if same_decision(row, result):
                    continue
                disagreed += 1
                line = {
                    "k": "disagreement", "seq": row[0], "ts_us": row[1], "order_id": row[3], "account": row[4],
                    "order": order_text(row), "notional_usd": row[9] * row[10], "live": [row[15], row[16], row[17]],
                    "shadow": [result.decision, str(result.reason_code), result.adjusted_quantity],
                    "reason": result.reason,
                }  # fmt: skip
                out.write(json.dumps(line) + "\n")
        if (last, decided, disagreed) != said:
            said = (last, decided, disagreed)
            progress = {"k": "progress", "seq": last, "decided": decided, "disagreed": disagreed}
            out.write(json.dumps(progress) + "\n")
            out.flush()
        if found < _SPAN and wait():
            return


def main(argv: list[str]) -> int:
    configure_logging("console", level=logging.CRITICAL, stream=sys.stderr)  # the replayed gate's lines: noise
    journal, run, candidate_path, report_from, poll_s = argv
    out = sys.stdout
    try:
        candidate = load_config(candidate_path)
    except ConfigError as exc:
        out.write(json.dumps({"k": "error", "why": f"{candidate_path}: " + "; ".join(exc.problems)}) + "\n")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def parent_gone() -> None:  # stdin closes when the parent closes it or dies
        sys.stdin.read()
        stop.set()

    threading.Thread(target=parent_gone, name="shadow-stdin", daemon=True).start()
    try:
        follow(Path(journal), run, candidate, int(report_from), out, lambda: stop.wait(float(poll_s)))
    except Exception as exc:  # noqa: BLE001 - said to the parent, which journals it
        out.write(json.dumps({"k": "error", "why": f"{type(exc).__name__}: {exc}"[:500]}) + "\n")
        out.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
