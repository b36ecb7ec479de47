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

import json
import os
import secrets
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
    """Write, fsync, rename over, fsync the folder: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
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
    def start(self) -> None:
        """Read what a previous process left, publish the halt reading, hand the
        gate the overrides still running, and re-publish on a timer."""
        with self._lock:
            self._halt = self._read_halt()
            self._overrides = self._read_overrides()
            self._sweep()
            for record in self._overrides.values():
                if record.state == "active":
                    self._tell_gate(record)
            self._publish_halt()
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
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"active": False}
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
            _write_atomically(self._dir / HALT_FILE, self._halt)
            self._publish_halt()  # on the board before this returns: the next evaluation is blocked
        self._journal.event(self._clock.now(), "operator_halt", HALT_SOURCE, by=by, reason=reason)
        log.warning("operator_halt", by=by, reason=reason)
        return dict(self._halt)

    def resume(self, by: str, reason: Any = "resumed") -> dict[str, Any]:
        reason = _text(reason, "reason")
        with self._lock:
            was = dict(self._halt)
            self._halt = {"active": False, "by": by, "reason": reason, "since": _iso(self._clock.now())}
            _write_atomically(self._dir / HALT_FILE, self._halt)
            self._publish_halt()
        self._journal.event(
            self._clock.now(), "operator_resume", HALT_SOURCE, by=by, reason=reason, was_halted=bool(was.get("active"))
        )
        log.warning("operator_resume", by=by, reason=reason, was_halted=bool(was.get("active")))
        return dict(self._halt)

    def halt_status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._halt)

    # -- overrides ----------------------------------------------------------------------
    def _read_overrides(self) -> dict[str, OverrideRecord]:
        path = self._dir / OVERRIDES_FILE
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            return {r["id"]: OverrideRecord(**r) for r in rows}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # Unreadable: no override runs (fail closed); the file is kept for a person to read.
            log.error("overrides_unreadable", path=str(path), error=str(exc), effect="no override is active")
            return {}

    def _save(self) -> None:
        _write_atomically(self._dir / OVERRIDES_FILE, [asdict(r) for r in self._overrides.values()])

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
            left = max(0.0, (_when(record.expires_at) - self._clock.now()).total_seconds())
        self._link.tell(Override(record.account, record.approved_by or "?", record.reason, left, record.id))

    def _sweep(self) -> None:
        """Proposals not approved in time and overrides past their TTL expire (journaled once)."""
        now = self._clock.now()
        changed = False
        for record in list(self._overrides.values()):
            if record.state in ("proposed", "active") and record.expires_at and _when(record.expires_at) <= now:
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
            self._overrides[record.id] = record
            self._save()
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
            if record.proposed_by == by:
                raise ControlError(403, f"{by} proposed override {record.id}: another operator must approve it")
            now = self._clock.now()
            record = replace(
                record,
                state="active",
                approved_by=by,
                approved_at=_iso(now),
                expires_at=_iso(now + timedelta(seconds=record.ttl_s)),
            )
            self._overrides[record.id] = record
            self._save()
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
            self._overrides[record.id] = record
            self._save()
            if was == "active":
                self._tell_gate(record)  # ttl 0: the gate drops it
        self._event("override_revoked", record, by, was=was)
        return record

    def overrides(self) -> list[OverrideRecord]:
        with self._lock:
            self._sweep()
            return sorted(self._overrides.values(), key=lambda r: r.proposed_at, reverse=True)
