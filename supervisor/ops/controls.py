"""Emergency controls: the operator halt and two-person overrides.

Both are kept in memory, behind one lock, and in `{state.dir}` (JSON files
replaced atomically), so a restarted process is still halted and its
approved overrides still run out at the same time.

- The operator halt is one more ESS source (`operator_halt`) on the board:
  any active source halts, and a resume clears only this one. Its reading is
  published at once (the next evaluation sees it) and again every
  `ess.poll_interval_s`, so it never ages into ESS_STATE_STALE. A halt file
  that cannot be read halts.
- An override is proposed by one operator and approved by another; a
  proposal not approved within `overrides.approval_timeout_s` expires; an
  approved one lets that account's reduce-only orders through the checks an
  emergency liquidation must pass, until its `ttl_s` (at most
  `overrides.max_ttl_s`) runs out or it is revoked. The gate gets it as an
  `Override` through the gate link (a restarted gate is re-fed it).

Every action is journaled with the operator, the time and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from supervisor.channels.ess_board import EssBoard
from supervisor.channels.gate_link import GateLink
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock, Timer
from supervisor.config import Config
from supervisor.core.messages import EssSourceStatus, EssState, Override
from supervisor.core.values import shorten
from supervisor.errors import RiskgateError
from supervisor.logs import get_logger

__all__ = [
    "HALT_FILE",
    "HALT_SOURCE",
    "OVERRIDES_FILE",
    "ControlError",
    "OperatorControls",
    "OverrideRecord",
]

log = get_logger("riskgate.controls")

HALT_FILE = "operator_halt.json"
OVERRIDES_FILE = "overrides.json"
HALT_SOURCE = "operator_halt"
MAX_REASON = 500


class ControlError(RiskgateError):
    """A control action refused: `status` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class OverrideRecord:
    id: str
    account: str
    reason: str
    ttl_s: float
    proposed_by: str
    proposed_at: str  # ISO 8601, UTC
    state: str  # proposed | active | expired | revoked
    approved_by: str | None = None
    approved_at: str | None = None
    expires_at: str | None = None  # an active one runs out then; a proposal expires unapproved then
    ended_by: str | None = None


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _write_atomically(path: Path, body: Any) -> None:
    """Write a new file (an unpredictable name, created exclusively), fsync,
    rename over the old (a rename replaces a symlink, never follows it), fsync
    the folder: a crash leaves the old file or the new one. OSError if not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_MAX_FILE = 1_000_000


def _read_small_file(path: Path) -> str | None:
    """A regular file's text (None when absent). Never blocks on a FIFO or a
    device, never reads more than 1 MB: OSError or ValueError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > _MAX_FILE:
            raise ValueError(f"{path} is larger than {_MAX_FILE} bytes")
        return os.read(fd, _MAX_FILE + 1).decode("utf-8")
    finally:
        os.close(fd)


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
        self._overrides: dict[str, OverrideRecord] = {}
        self._timer: Timer | None = None

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
            self._overrides = self._read_overrides()
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
            text = _read_small_file(path)
            if text is None:
                return {"active": False}
            body = json.loads(text)
        except (OSError, ValueError) as exc:
            why = f"{path} unreadable ({type(exc).__name__}): treated as halted"
            log.error("operator_halt_unreadable", path=str(path), error=str(exc))
            return {"active": True, "by": "?", "reason": why, "since": _iso(self._clock.now())}
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            return {"active": True, "by": "?", "reason": f"{path} malformed: treated as halted", "since": None}
        return body

    def reading(self) -> EssSourceStatus:
        halt = self._halt
        if not halt.get("active"):
            return EssSourceStatus(HALT_SOURCE, False, "no operator halt")
        detail = f"operator halt by {halt.get('by')} since {halt.get('since')}: {halt.get('reason')}"
        return EssSourceStatus(HALT_SOURCE, True, detail)

    def _publish_halt(self) -> None:
        self._publish(EssState.combine((self.reading(),)))

    def halt(self, reason: Any, by: str) -> dict[str, Any]:
        reason = _text(reason, "reason")
        with self._lock:
            since = self._halt.get("since") if self._halt.get("active") else _iso(self._clock.now())
            self._halt = {"active": True, "by": by, "reason": reason, "since": since}
            self._publish_halt()  # on the board before this returns: the next evaluation is blocked
            self._save_or_say(HALT_FILE, self._halt, "halted now, but the halt could not be saved")
        self._journal.event(self._clock.now(), "operator_halt", HALT_SOURCE, by=by, reason=reason)
        log.warning("operator_halt", by=by, reason=reason)
        return dict(self._halt)

    def resume(self, by: str, reason: Any = "resumed") -> dict[str, Any]:
        reason = _text(reason, "reason")
        with self._lock:
            was = dict(self._halt)
            resumed = {"active": False, "by": by, "reason": reason, "since": _iso(self._clock.now())}
            # Saved first: a resume that a restart would undo is no resume (still halted).
            self._save_or_say(HALT_FILE, resumed, "not resumed: the resume could not be saved")
            self._halt = resumed
            self._publish_halt()
        self._journal.event(
            self._clock.now(), "operator_resume", HALT_SOURCE, by=by, reason=reason, was_halted=bool(was.get("active"))
        )
        log.warning("operator_resume", by=by, reason=reason, was_halted=bool(was.get("active")))
        return dict(self._halt)

    def _save_or_say(self, name: str, body: Any, what: str) -> None:
        try:
            _write_atomically(self._dir / name, body)
        except OSError as exc:
            log.error("control_not_saved", file=name, error=f"{type(exc).__name__}: {exc}", effect=what)
            raise ControlError(503, f"{what} ({self._dir / name}: {exc.strerror or exc})") from exc

    def halt_status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._halt)

    # -- overrides ----------------------------------------------------------------------
    def _read_overrides(self) -> dict[str, OverrideRecord]:
        """What a previous process saved, each record checked as if it were new;
        anything unreadable or implausible: no override runs (fail closed)."""
        path = self._dir / OVERRIDES_FILE
        try:
            text = _read_small_file(path)
            if text is None:
                return {}
            records = {}
            for row in json.loads(text):
                record = OverrideRecord(**row)
                self._check_saved(record)
                records[record.id] = record
            return records
        except Exception as exc:  # noqa: BLE001 - any damage: nothing from it is trusted
            log.error(
                "overrides_unreadable",
                path=str(path),
                error=f"{type(exc).__name__}: {exc}",
                effect="no override is active",
            )
            return {}

    def _check_saved(self, r: OverrideRecord) -> None:
        if r.state not in ("proposed", "active", "expired", "revoked"):
            raise ValueError(f"override {r.id}: state {r.state!r}")
        for name in ("id", "account", "reason", "proposed_by", "proposed_at"):
            if not isinstance(getattr(r, name), str) or not getattr(r, name):
                raise ValueError(f"override {r.id}: {name} missing")
        _when(r.proposed_at)
        if (
            isinstance(r.ttl_s, bool)
            or not isinstance(r.ttl_s, (int, float))
            or not 0 < r.ttl_s <= self._config.overrides.max_ttl_s
        ):
            raise ValueError(f"override {r.id}: ttl_s {r.ttl_s!r} outside (0, overrides.max_ttl_s]")
        if r.state == "active":
            if not r.approved_by or r.approved_by.casefold() == r.proposed_by.casefold() or not r.approved_at:
                raise ValueError(f"override {r.id}: active without a second operator's approval")
            if r.expires_at is None or abs((_when(r.expires_at) - _when(r.approved_at)).total_seconds() - r.ttl_s) > 1:
                raise ValueError(f"override {r.id}: its end is not its approval plus its ttl_s")

    def _save(self) -> None:
        with contextlib.suppress(ControlError):  # an expiry not saved is found again at the next sweep
            self._save_records_or_say(self._overrides, "expiry not saved")

    def _save_records_or_say(self, records: dict[str, OverrideRecord], what: str) -> None:
        self._save_or_say(OVERRIDES_FILE, [asdict(r) for r in records.values()], what)

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
            left = (_when(record.expires_at) - self._clock.now()).total_seconds()
            left = min(max(0.0, left), record.ttl_s)  # a wall clock set back never lengthens it
        self._link.tell(Override(record.account, record.approved_by or "?", record.reason, left, record.id))

    def _sweep(self) -> None:
        """Proposals not approved in time and overrides past their TTL expire (journaled once)."""
        now = self._clock.now()
        changed = False
        for record in list(self._overrides.values()):
            started = _when(record.approved_at or record.proposed_at)
            # Past its end, or the wall clock is before its start (set back): expired, fail closed.
            ended = record.expires_at is not None and (_when(record.expires_at) <= now or now < started)
            if record.state in ("proposed", "active") and ended:
                self._overrides[record.id] = replace(record, state="expired")
                self._event("override_expired", record, None, was=record.state)
                changed = True
        if changed:
            self._save()

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
            proposed_at=_iso(now),
            state="proposed",
            expires_at=_iso(now + timedelta(seconds=self._config.overrides.approval_timeout_s)),
        )
        with self._lock:
            self._sweep()
            saved = {**self._overrides, record.id: record}
            self._save_records_or_say(saved, "not proposed: the proposal could not be saved")
            self._overrides = saved
        self._event("override_proposed", record, by)
        return record

    def _get(self, override_id: Any) -> OverrideRecord:
        record = self._overrides.get(override_id) if isinstance(override_id, str) else None
        if record is None:
            raise ControlError(404, f"no override {shorten(override_id)}")
        return record

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
                approved_at=_iso(now),
                expires_at=_iso(now + timedelta(seconds=record.ttl_s)),
            )
            saved = dict(self._overrides)
            saved[record.id] = record
            self._save_records_or_say(saved, "not approved: the approval could not be saved")
            self._overrides = saved
            self._tell_gate(record)
        self._event("override_approved", record, by, proposed_by=record.proposed_by)
        return record

    def revoke(self, override_id: Any, by: str) -> OverrideRecord:
        with self._lock:
            self._sweep()
            record = self._get(override_id)
            if record.state not in ("proposed", "active"):
                raise ControlError(409, f"override {record.id} is {record.state} already")
            was = record.state
            record = replace(record, state="revoked", ended_by=by)
            if was == "active":
                self._tell_gate(record)  # first, ttl 0: the gate drops it whatever happens next
            self._overrides[record.id] = record
            self._save_records_or_say(
                self._overrides, "revoked in the running gate, but not saved: a restart would bring it back"
            )
        self._event("override_revoked", record, by, was=was)
        return record

    def overrides(self) -> list[OverrideRecord]:
        with self._lock:
            self._sweep()
            return sorted(self._overrides.values(), key=lambda r: r.proposed_at, reverse=True)
