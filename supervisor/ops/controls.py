"""Emergency controls: the operator halt and two-person overrides.

Both are kept in memory, behind one lock, and in `{state.dir}`
(supervisor.ops.control_files: the halt and the live overrides in JSON files
replaced atomically, ended overrides appended to a history), so a restarted
process is still halted and its approved overrides still run out at the same
time. `load` reads them before the gate starts.

- The operator halt is one more ESS source (`operator_halt`) on the board:
  any active source halts, and a resume clears only this one. Its reading is
  published at once (the next evaluation sees it) and again every
  `ess.poll_interval_s`, so it never ages into ESS_STATE_STALE. A halt file
  that cannot be read halts.
- An override is proposed by one operator and approved by another; a
  proposal not approved within `overrides.approval_timeout_s` expires; an
  approved one lets that account's reduce-only orders through the checks an
  emergency liquidation must pass, until its `ttl_s` (at most
  `overrides.max_ttl_s` when proposed) runs out or it is revoked. The gate gets it as an
  `Override` through the gate link (a restarted gate is re-fed it).

Every action is journaled with the operator, the time and the reason.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock, Timer
from supervisor.config import Config
from supervisor.core.halts import OPERATOR_HALT_SOURCE, operator_halt_detail
from supervisor.core.messages import EssSourceStatus, EssState, Override, ReduceOnlyMode
from supervisor.core.values import shorten
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger
from supervisor.ops.control_files import (
    HISTORY_FILE,
    HISTORY_KEPT,
    LIVE_STATES,
    OVERRIDES_FILE,
    OverrideFiles,
    OverrideRecord,
    check_saved,
    iso,
    read_small_file,
    when,
    write_atomically,
)
from supervisor.shared.db import SharedStoreError
from supervisor.shared.store import HaltRow, OverrideConflictError, Round, SharedStore

__all__ = [
    "HALT_FILE",
    "HALT_SOURCE",
    "HISTORY_FILE",
    "OVERRIDES_FILE",
    "ControlError",
    "OperatorControls",
    "OverrideRecord",
]

log = get_logger("riskgate.controls")

_RECORD_FIELDS = tuple(f.name for f in fields(OverrideRecord))
HALT_FILE = "operator_halt.json"
HALT_SOURCE = OPERATOR_HALT_SOURCE
MAX_REASON = 500


class ControlError(RiskgateError):
    """A control action refused: `status` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


HALT_MODES = ("all", "reduce_only")


def halts_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The stacked halts a halt document holds: each operator's by, reason, since and mode. A
    document of an earlier release (one halt, no `halts`), or one whose `halts` cannot be read,
    is one halt of every order: the strictest reading."""
    if not doc.get("active"):
        return []
    halts = doc.get("halts")
    if isinstance(halts, list) and halts and all(isinstance(h, dict) for h in halts):
        return [
            {
                "by": str(h.get("by")),
                "reason": str(h.get("reason")),
                "since": h.get("since") if isinstance(h.get("since"), str) else None,
                "mode": h["mode"] if h.get("mode") in HALT_MODES else "all",
            }
            for h in halts
        ]
    return [{"by": str(doc.get("by")), "reason": str(doc.get("reason")), "since": doc.get("since"), "mode": "all"}]


def halt_doc(halts: list[dict[str, Any]]) -> dict[str, Any]:
    """The halt document of these stacked halts: `mode` "all" when any halts every order."""
    if not halts:
        return {"active": False}
    since = [h["since"] for h in halts if isinstance(h.get("since"), str)]
    return {
        "active": True,
        "mode": "all" if any(h["mode"] == "all" for h in halts) else "reduce_only",
        "by": ", ".join(dict.fromkeys(h["by"] for h in halts)),
        "reason": "; ".join(h["reason"] for h in halts),
        "since": min(since) if since else None,
        "halts": halts,
    }


def _row_doc(row: HaltRow) -> dict[str, Any]:
    """The shared halt row as a halt document (halts_of reads a row of an earlier release too)."""
    return {"active": row.active, "by": row.by, "reason": row.reason, "since": row.since, "halts": list(row.halts)}


def _text(value: Any, what: str, limit: int = MAX_REASON) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ControlError(422, f"{what}: a non-empty line of printable text is required, got {shorten(value)}")
    if len(value) > limit:
        raise ControlError(422, f"{what}: at most {limit} characters")
    return value.strip()


class OperatorControls:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        board: EssBoard,
        link: GateLink,
        journal: JournalQueue,
        publish: Any,
    ) -> None:
        """`publish(state)` puts an ESS reading on the board and tells the gate
        (the facade's `report_ess_state`, which also keeps other readings)."""
        self._config = config
        self._clock = clock
        self._board = board
        self._link = link
        self._journal = journal
        self._publish = publish
        self._lock = threading.RLock()
        self._dir = Path(config.state.dir)
        self._halt: dict[str, Any] = {"active": False}
        self._files = OverrideFiles(self._dir)
        self._overrides: dict[str, OverrideRecord] = {}  # the live ones: proposed and active
        self._history: deque[OverrideRecord] = deque(maxlen=HISTORY_KEPT)  # recent ended ones, oldest first
        self._timer: Timer | None = None
        # Several instances (store.backend = "postgresql"): the halt is the database's; one made
        # here while the store did not answer is pushed there by the next round (`adopt_shared`).
        self._shared: SharedStore | None = None
        self._unshared = False
        self._halt_version: int | None = None  # the shared row's version of the latest halt seen or made here
        self._writes = 0  # halts and resumes this process wrote to the shared store (a round's ticket)
        # Halts made here not yet in the shared store, by (operator, mode): the only ones a write
        # merges into the store's row (the local copy may hold halts resumed elsewhere since).
        self._pending_halts: dict[tuple[str, str], dict[str, Any]] = {}
        self._clear_asked: dict[str, tuple[str, str, float]] = {}  # account -> (by, why, monotonic): two-person

    def share_through(self, store: SharedStore) -> None:
        """Halts and resumes go through the shared store (before `load`)."""
        self._shared = store

    def reconfigure(self, config: Config) -> None:
        self._config = config

    # -- life cycle -------------------------------------------------------------------
    def load(self) -> None:
        """Read what a previous process left, publish the halt reading and hand
        the gate link the overrides still running. Called before the gate starts:
        the board and the link hold them, so the gate's first order sees them."""
        with self._lock:
            self._halt = self._read_halt()
            self._publish_halt()  # first: whatever else fails, a halt holds
            # A halt the store did not take before a restart is still to be pushed to it; so is one
            # never shared at all (made before this instance shared its state, or a new database).
            if self._shared is not None and self._halt.get("active"):
                self._unshared = bool(self._halt.get("unshared")) or "shared_version" not in self._halt
                if self._unshared:  # which of them were made here is not known: all are pushed
                    self._pending_halts = {(h["by"], h["mode"]): h for h in halts_of(self._halt)}
            version = self._halt.get("shared_version")
            self._halt_version = version if type(version) is int else None
            self._overrides, self._history = self._files.load()
            if self._shared is not None:
                # The store's overrides are every instance's (the first round brings them): a file
                # of this instance's own from before must not let anything through meanwhile.
                self._overrides = {}
            self._sweep()
            for record in self._overrides.values():
                if record.state == "active":
                    self._tell_gate(record)

    def start(self) -> None:
        """Re-publish the halt reading on a timer (`load` first, before the gate starts)."""
        interval = self._config.ess.poll_interval_s
        self._timer = self._clock.call_every(interval, self.tick, "operator-controls")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def tick(self) -> None:
        with self._lock:
            self._sweep()
            self._publish_halt()

    # -- the operator halt ----------------------------------------------------------------
    def _read_halt(self) -> dict[str, Any]:
        path = self._dir / HALT_FILE
        try:
            text = read_small_file(path)
            if text is None:
                return {"active": False}
            body = json.loads(text)
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
            why = f"{path} unreadable ({type(exc).__name__}): treated as halted"
            log.error("operator_halt_unreadable", path=str(path), error=str(exc))
            return {"active": True, "by": "?", "reason": why, "since": iso(self._clock.now())}
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            return {"active": True, "by": "?", "reason": f"{path} malformed: treated as halted", "since": None}
        return body

    def reading(self) -> EssSourceStatus:
        """The ESS reading of the halts of every order (a reduce-only halt is not one: the gate
        blocks orders that grow a position instead, REDUCE_ONLY_MODE)."""
        full = [h for h in halts_of(self._halt) if h["mode"] == "all"]
        if not full:
            return EssSourceStatus(HALT_SOURCE, False, "no operator halt")
        detail = "; ".join(operator_halt_detail(h["by"], h["since"], h["reason"]) for h in full)
        return EssSourceStatus(HALT_SOURCE, True, detail)

    def _publish_halt(self) -> None:
        self._publish(EssState.combine((self.reading(),)))
        reduce = [f"by {h['by']}: {h['reason']}" for h in halts_of(self._halt) if h["mode"] == "reduce_only"]
        self._link.tell(ReduceOnlyMode("; ".join(reduce) if reduce else None))

    def halt(self, reason: Any, by: str, mode: Any = "all") -> dict[str, Any]:
        """Halt every order (`mode` "all"), or every order that grows a position ("reduce_only").
        Halts stack: each operator's keeps its own reason and time (a second halt of the same
        operator and mode replaces the reason, keeps the time)."""
        reason = _text(reason, "reason")
        if mode not in HALT_MODES:
            raise ControlError(422, f'mode: "all" or "reduce_only", got {shorten(mode, 40)}')
        with self._lock:
            halts = halts_of(self._halt)
            same = [h for h in halts if h["by"] == by and h["mode"] == mode]
            since = same[0]["since"] if same and same[0]["since"] else iso(self._clock.now())
            halts = [h for h in halts if not (h["by"] == by and h["mode"] == mode)]
            made = {"by": by, "reason": reason, "since": since, "mode": mode}
            halts.append(made)
            self._pending_halts[(by, mode)] = made
            self._halt = halt_doc(halts)
            self._publish_halt()  # on the board before this returns: the next evaluation is blocked
            self._save_or_say(HALT_FILE, self._halt, "halted now, but the halt could not be saved")
            unshared = self._share_halt()
            if unshared is not None:  # kept with the halt: a restart pushes it too
                self._halt = {**self._halt, "unshared": True}
                self._save_or_say(HALT_FILE, self._halt, "halted now, but the halt could not be saved")
        self._journal.event(self._clock.now(), "operator_halt", HALT_SOURCE, by=by, reason=reason, mode=mode)
        log.warning("operator_halt", by=by, reason=reason, mode=mode)
        if unshared is not None:
            raise ControlError(503, f"halted on this instance only ({self._config.instance.name}): the shared store "
                               f"did not take it ({unshared}); it is pushed there as soon as this instance reaches "
                               "it. Other instances that reach the store do not know of it: halt them too, or "
                               "halt through an instance that reaches the store")  # fmt: skip
        return dict(self._halt)

    def _share_halt(self) -> str | None:
        """Write this instance's halt to the shared store; why not (then kept to push), or None."""
        if self._shared is None:
            return None
        mine = list(self._pending_halts.values())

        def merged(held: dict[str, Any]) -> dict[str, Any]:
            # Every halt the store holds stays; the ones made here replace theirs of the same operator
            # and mode. Only those: a halt this instance still shows may have been resumed elsewhere
            # since its last round (found by a probe: a resumed full halt came back).
            ours = set(self._pending_halts)
            return halt_doc([h for h in halts_of(held) if (h["by"], h["mode"]) not in ours] + mine)

        try:
            row = self._shared.set_halt(merged)
        except SharedStoreError as exc:
            self._unshared = True
            log.error("operator_halt_not_shared", error=str(exc))
            return str(exc)
        self._unshared = False
        self._pending_halts = {}
        self._halt_version = row.version
        self._writes += 1
        before = halts_of(self._halt)
        self._halt = {**halt_doc(halts_of(_row_doc(row))), "shared_version": row.version}  # every instance's
        if halts_of(self._halt) != before:
            self._publish_halt()  # another operator's halt, read back with ours: it holds here too
        with contextlib.suppress(OSError):  # shared now: the file says so (at the next write at the latest)
            write_atomically(self._dir / HALT_FILE, self._halt)
        return None

    def halt_writes(self) -> int:
        """A round's ticket, taken before it reads: how many halts and resumes this process had
        written to the shared store (a read with the current ticket cannot predate any of them)."""
        with self._lock:
            return self._writes

    def adopt_shared(self, found: Round, ticket: int | None = None) -> None:
        """What a round read: the shared halt (on the ESS board first) and the live overrides.
        `ticket`: `halt_writes()` before the round read (None: unknown, the read may be stale)."""
        self._adopt_halt(found.halt, ticket)
        self._adopt_overrides(found.overrides)

    def _adopt_halt(self, row: HaltRow, ticket: int | None) -> None:
        """The shared halt as a round read it: this instance's halt from now on (a halt made
        here that the store did not take yet is pushed first: a halt is never lost)."""
        with self._lock:
            if self._unshared and self._halt.get("active"):
                if self._share_halt() is not None:
                    return  # still not shared: the local halt holds
                return  # shared now: the next round reads it back
            theirs = halts_of(_row_doc(row))
            if self._halt_version is not None and row.version <= self._halt_version:
                if ticket != self._writes:
                    # Read before a halt or resume made here since: it never undoes it (found by a
                    # probe), nor brings back a halt resumed here since (CI found that one).
                    return
                # Read after every write of this process, yet no newer: the row's version went back
                # (a restored database, a row made again). Its versions count from here; a halt
                # this instance holds that the row lacks holds all the same and is pushed there.
                there = {(h["by"], h["mode"]) for h in theirs}
                extra = [h for h in halts_of(self._halt) if (h["by"], h["mode"]) not in there]
                theirs = theirs + extra
                self._unshared = bool(extra)
                self._pending_halts.update({(h["by"], h["mode"]): h for h in extra})
            self._halt_version = row.version
            shared = {**halt_doc(theirs), "shared_version": self._halt_version}
            if not row.active and row.by is not None:
                shared.update(by=row.by, reason=row.reason, since=row.since)  # the last resume: who, why, when
            current = {k: self._halt.get(k) for k in ("active", "by", "reason", "since", "mode", "halts")}
            if {k: shared.get(k) for k in current} == current:
                return
            self._halt = shared
            self._publish_halt()
            try:
                write_atomically(self._dir / HALT_FILE, shared)
            except OSError as exc:
                log.error("control_not_saved", file=HALT_FILE, error=str(exc), effect="the shared halt holds here")
        kind = "operator_halt" if row.active else "operator_resume"
        self._journal.event(self._clock.now(), kind, HALT_SOURCE, by=row.by, reason=row.reason, through=row.instance)
        log.warning(kind, by=row.by, reason=row.reason, through=row.instance)

    def resume(self, by: str, reason: Any = "resumed") -> dict[str, Any]:
        """Lift every operator halt (each stacked one: the answer's `lifted` says which); 409
        when none holds (an ESS or kill-switch halt is lifted where it comes from)."""
        reason = _text(reason, "reason")
        nothing = ControlError(409, "nothing to resume: no operator halt holds (an ESS or kill-switch halt is "
                               "lifted where it comes from)")  # fmt: skip
        with self._lock:
            lifted = halts_of(self._halt)
            since = iso(self._clock.now())
            if self._shared is not None:
                # The database's halt is every instance's: a resume it did not take is no resume. It
                # lifts what the store holds (every instance's halts) and what only this one holds.

                def cleared(held: dict[str, Any]) -> dict[str, Any]:
                    there = halts_of(held)
                    lifted[:] = there + [h for h in lifted if h not in there]
                    if not lifted:
                        raise nothing
                    return {"active": False, "by": by, "reason": reason, "since": since, "halts": []}

                try:
                    row = self._shared.set_halt(cleared)
                except SharedStoreError as exc:
                    raise ControlError(503, f"not resumed: the shared store did not take it ({exc})") from exc
                self._unshared = False
                self._pending_halts = {}
                self._halt_version = row.version
                self._writes += 1
            elif not lifted:
                raise nothing
            resumed: dict[str, Any] = {"active": False, "by": by, "reason": reason, "since": since, "lifted": lifted}
            if self._shared is not None:
                resumed["shared_version"] = row.version
            # Saved first: a resume that a restart would undo is no resume (still halted).
            self._save_or_say(HALT_FILE, resumed, "not resumed: the resume could not be saved")
            self._halt = resumed
            self._publish_halt()
        names = [f"{h['by']} ({'reduce-only' if h['mode'] == 'reduce_only' else 'all'})" for h in lifted]
        self._journal.event(self._clock.now(), "operator_resume", HALT_SOURCE, by=by, reason=reason, lifted=names)
        log.warning("operator_resume", by=by, reason=reason, lifted=names)
        return dict(self._halt)

    def _save_or_say(self, name: str, body: Any, what: str) -> None:
        try:
            write_atomically(self._dir / name, body)
        except OSError as exc:
            log.error("control_not_saved", file=name, error=f"{type(exc).__name__}: {exc}", effect=what)
            raise ControlError(503, f"{what} ({self._dir / name}: {exc.strerror or exc})") from exc

    def halt_status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._halt)

    # -- overrides ----------------------------------------------------------------------
    def _save_live_or_say(self, live: dict[str, OverrideRecord], what: str) -> None:
        try:
            self._files.save_live(live)
        except OSError as exc:
            log.error("control_not_saved", file=OVERRIDES_FILE, error=f"{type(exc).__name__}: {exc}", effect=what)
            raise ControlError(503, f"{what} ({self._files.live_path}: {exc.strerror or exc})") from exc

    def _ended(self, records: list[OverrideRecord]) -> None:
        """Ended records leave the live set (saved first: they must not come back at a
        restart) and join the history (appended; the journal has them whatever happens)."""
        for record in records:
            self._overrides.pop(record.id, None)
            self._history.append(record)
        try:
            self._files.append_history(records, self._history)
        except OSError as exc:
            log.error("overrides_history_not_saved", error=f"{type(exc).__name__}: {exc}", effect="in the journal only")

    def _event(self, kind: str, record: OverrideRecord, by: str | None, **detail: Any) -> None:
        self._journal.event(
            self._clock.now(),
            kind,
            "operator",
            record.account,
            override_id=record.id,
            by=by,
            reason=record.reason,
            ttl_s=record.ttl_s,
            **detail,
        )
        log.warning(kind, override_id=record.id, account=record.account, by=by, reason=record.reason, **detail)

    def _tell_gate(self, record: OverrideRecord) -> None:
        left = 0.0
        if record.state == "active" and record.expires_at is not None:
            left = (when(record.expires_at) - self._clock.now()).total_seconds()
            left = min(max(0.0, left), record.ttl_s)  # a wall clock set back never lengthens it
        self._link.tell(Override(record.account, record.approved_by or "?", record.reason, left, record.id))

    def _sweep(self) -> None:
        """Proposals not approved in time and overrides past their TTL expire (journaled once)."""
        now = self._clock.now()
        expired = []
        for record in list(self._overrides.values()):
            started = when(record.approved_at or record.proposed_at)
            # Past its end, or the wall clock is before its start (set back): expired, fail closed.
            if record.expires_at is not None and (when(record.expires_at) <= now or now < started):
                expired.append(replace(record, state="expired"))
                self._event("override_expired", record, None, was=record.state)
        for record in expired:
            if self._overrides.get(record.id, record).state == "active":  # not a proposal: the gate holds it
                self._tell_gate(record)  # ended here: ended at the gate too (a wall clock set back)
        if expired:
            live = {k: r for k, r in self._overrides.items() if k not in {e.id for e in expired}}
            try:
                self._files.save_live(live)
            except OSError as exc:  # expired here in any case; found again at the next start's sweep
                log.error("control_not_saved", file=OVERRIDES_FILE, error=f"{type(exc).__name__}: {exc}")
            self._ended(expired)

    def propose(self, account: Any, reason: Any, ttl_s: Any, by: str) -> OverrideRecord:
        if not isinstance(account, str) or account not in self._config.accounts.accounts:
            raise ControlError(404, f"account {shorten(account)} is not configured")
        reason = _text(reason, "reason")
        limit = self._config.overrides.max_ttl_s
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not 0 < ttl_s <= limit:
            raise ControlError(422, f"ttl_s: seconds in (0, {limit:g}] (overrides.max_ttl_s), got {shorten(ttl_s)}")
        now = self._clock.now()
        record = OverrideRecord(
            id=secrets.token_hex(8),
            account=account,
            reason=reason,
            ttl_s=float(ttl_s),
            proposed_by=by,
            proposed_at=iso(now),
            state="proposed",
            expires_at=iso(now + timedelta(seconds=self._config.overrides.approval_timeout_s)),
        )
        with self._lock:
            self._sweep()
            saved = {**self._overrides, record.id: record}
            if self._shared is not None:
                self._share_override(record, None, "not proposed")
            else:
                self._save_live_or_say(saved, "not proposed: the proposal could not be saved")
            self._overrides = saved
        self._event("override_proposed", record, by)
        return record

    def _share_override(self, record: OverrideRecord, was: str | None, what: str) -> None:
        """Write the change to the shared store (every instance's overrides): refused as the
        store says (409: changed through another instance), 503 when it does not answer."""
        if self._shared is None:
            return
        try:
            self._shared.put_override(asdict(record), was, iso(self._clock.now()))
        except OverrideConflictError as exc:
            raise ControlError(exc.status, f"{what}: {exc}") from exc
        except SharedStoreError as exc:
            raise ControlError(503, f"{what}: the shared store did not take it ({exc})") from exc

    def _adopt_overrides(self, records: list[dict[str, Any]]) -> None:
        """The live overrides of every instance, as the round read them: this instance's
        from now on. One that ended elsewhere (revoked, run out) ends here too, at the gate first."""
        shared: dict[str, OverrideRecord] = {}
        for raw in records:
            try:
                record = OverrideRecord(**{k: raw[k] for k in _RECORD_FIELDS if k in raw})
                check_saved(record)
            except (TypeError, ValueError, KeyError) as exc:  # not one riskgate wrote: never lets anything through
                log.error("shared_override_unreadable", error=str(exc)[:200])
                continue
            if record.state in LIVE_STATES and record.account in self._config.accounts.accounts:
                shared[record.id] = record
        with self._lock:
            ended = [r for k, r in self._overrides.items() if k not in shared]
            changed = [r for k, r in shared.items() if self._overrides.get(k) != r]
            if not ended and not changed:
                return
            self._overrides = shared
            for record in changed:
                if record.state == "active":
                    self._tell_gate(record)
            gone = []
            for record in ended:
                out = replace(record, state="expired" if self._past(record) else "revoked")
                if record.state == "active":
                    self._tell_gate(out)  # ttl 0: the gate drops it
                gone.append(out)
            if gone:
                self._ended(gone)
        for record in changed:
            self._journal.event(self._clock.now(), "override_shared", "operator", record.account,
                                override_id=record.id, state=record.state)  # fmt: skip

    def _past(self, record: OverrideRecord) -> bool:
        return record.expires_at is not None and when(record.expires_at) <= self._clock.now()

    def _get(self, override_id: Any) -> OverrideRecord:
        """A live override (proposed, active), or an ended one from the history (only to say it ended)."""
        record = None
        if isinstance(override_id, str):
            record = self._overrides.get(override_id)
            if record is None:
                ended = next((r for r in self._history if r.id == override_id), None)
                if ended is not None and ended.state not in LIVE_STATES:
                    record = ended
        if record is None and self._shared is not None and isinstance(override_id, str) and len(override_id) <= 64:
            record = self._shared_record(override_id)  # proposed through another instance since the last round
        if record is None:
            raise ControlError(404, f"no override {shorten(override_id)}")
        return record

    def _shared_record(self, override_id: str) -> OverrideRecord | None:
        if self._shared is None:
            return None
        try:
            raw = self._shared.override(override_id)
        except SharedStoreError as exc:
            raise ControlError(503, f"the shared store did not answer ({exc})") from exc
        if raw is None:
            return None
        try:
            record = OverrideRecord(**{k: raw[k] for k in _RECORD_FIELDS if k in raw})
            check_saved(record)
        except (TypeError, ValueError, KeyError):
            return None
        return record if record.account in self._config.accounts.accounts else None

    def approve(self, override_id: Any, by: str) -> OverrideRecord:
        with self._lock:
            self._sweep()
            record = self._get(override_id)
            if record.state != "proposed":
                raise ControlError(409, f"override {record.id} is {record.state}: only a proposal can be approved")
            if record.proposed_by.casefold() == by.casefold():
                raise ControlError(403, f"{by} proposed override {record.id}: another operator must approve it")
            running = [r.id for r in self._overrides.values() if r.state == "active" and r.account == record.account]
            if running:
                raise ControlError(
                    409, f"account {record.account} already has active override {running[0]}: revoke it first"
                )
            now = self._clock.now()
            record = replace(
                record,
                state="active",
                approved_by=by,
                approved_at=iso(now),
                expires_at=iso(now + timedelta(seconds=record.ttl_s)),
            )
            saved = dict(self._overrides)
            saved[record.id] = record
            if self._shared is not None:
                self._share_override(record, "proposed", "not approved")
            else:
                self._save_live_or_say(saved, "not approved: the approval could not be saved")
            self._overrides = saved
            self._tell_gate(record)
        self._event("override_approved", record, by, proposed_by=record.proposed_by)
        return record

    def revoke(self, override_id: Any, by: str) -> OverrideRecord:
        with self._lock:
            self._sweep()
            record = self._get(override_id)
            if record.state not in LIVE_STATES:
                raise ControlError(409, f"override {record.id} is {record.state} already")
            was = record.state
            record = replace(record, state="revoked", ended_by=by)
            if was == "active":
                self._tell_gate(record)  # first, ttl 0: the gate drops it whatever happens next
            if self._shared is not None:
                self._share_override(record, was, "revoked here, but not for every instance")
            live = {k: r for k, r in self._overrides.items() if k != record.id}
            try:
                why = "revoked in the running gate, but not saved: a restart would bring it back"
                self._save_live_or_say(live, why)
            finally:
                self._ended([record])
        self._event("override_revoked", record, by, was=was)
        return record

    # -- lockouts ---------------------------------------------------------------------------------
    def clear_lockout(
        self, account: Any, reason: Any, by: str, clear: Callable[[str, str], dict[str, Any]]
    ) -> dict[str, Any]:
        """An operator lifts an account's cooldown (the one lockout an operator's word ends:
        the others hold while their cause does). With `overrides.lockout_clear_two_person`
        the first operator's request waits for a second, different one's within
        `overrides.approval_timeout_s`. `clear(account, why)` does it (the account tracker).
        Journaled; `ControlError` 404 / 422 / 403 / 409 naming why not."""
        if not isinstance(account, str) or account not in self._config.accounts.accounts:
            raise ControlError(404, f"account {shorten(account, 40)!r} is not configured")
        why = _text(reason, "reason")
        if self._config.overrides.lockout_clear_two_person:
            now = self._clock.monotonic()
            asked = self._clear_asked.get(account)
            if asked is None or now - asked[2] > self._config.overrides.approval_timeout_s:
                self._clear_asked[account] = (by, why, now)
                self._journal.event(
                    self._clock.now(), "lockout_clear_requested", "operator", account, by=by, reason=why
                )
                log.warning("lockout_clear_requested", account=account, by=by, reason=why)
                return {"account": account, "cleared": False, "state": "awaiting_second_operator", "requested_by": by}
            if asked[0] == by:
                raise ControlError(403, f"the clear of {account} was asked by {by}: another operator confirms it")
            del self._clear_asked[account]
            why = f"{asked[1]} (asked by {asked[0]}, confirmed by {by})"
        done = clear(account, why)
        if not done.get("cleared"):
            raise ControlError(409, f"{account}: {done.get('why', 'nothing to clear')}")
        return {"account": account, "state": "cleared", "by": by, **done}

    def overrides(self) -> list[OverrideRecord]:
        with self._lock:
            self._sweep()
            return sorted([*self._overrides.values(), *self._history], key=lambda r: r.proposed_at, reverse=True)
