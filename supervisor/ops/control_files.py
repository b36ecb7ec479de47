"""The operator controls' files in `{state.dir}`: small, replaced atomically, read defensively.

- `operator_halt.json`: the operator halt (one JSON object).
- `overrides.json`: the *live* overrides only (proposed and active: a handful),
  replaced atomically when one begins or ends. A restarted process runs each to
  its same end.
- `overrides_history.jsonl`: ended overrides, one JSON line each, appended when
  one ends; pruned to the last `HISTORY_KEPT` at start. The journal keeps the
  audit trail (every proposal, approval, revocation, expiry) in any case; this
  file lets `GET /v1/overrides` show recent ones after a restart.

Saved records are read one by one: a record that cannot be trusted is skipped
and said so (an active one so skipped is simply not active: the safe side),
never the whole file. An older `overrides.json` that also held ended records
(a long history made it outgrow its read limit) is read with a larger limit
once, and its ended records move to the history.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor.logs import get_logger

__all__ = [
    "HISTORY_FILE",
    "HISTORY_KEPT",
    "LIVE_STATES",
    "OVERRIDES_FILE",
    "OverrideFiles",
    "OverrideRecord",
    "iso",
    "read_small_file",
    "when",
    "write_atomically",
]

log = get_logger("riskgate.controls")

OVERRIDES_FILE = "overrides.json"
HISTORY_FILE = "overrides_history.jsonl"
HISTORY_KEPT = 1_000  # ended overrides kept in the history file, and shown
LIVE_STATES = ("proposed", "active")
ENDED_STATES = ("expired", "revoked")
MAX_SAVED_TTL_S = 86_400.0  # the largest overrides.max_ttl_s a config may set
_MAX_FILE = 1_000_000
_MAX_LEGACY_FILE = 64_000_000  # an older overrides.json with its whole history in it


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


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write_atomically(path: Path, body: Any) -> None:
    """Write a new file (an unpredictable name, created exclusively), fsync,
    rename over the old (a rename replaces a symlink, never follows it), fsync
    the folder: a crash leaves the old file or the new one. OSError if not."""
    text = body if isinstance(body, str) else json.dumps(body, indent=1, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_small_file(path: Path, limit: int = _MAX_FILE) -> str | None:
    """A regular file's text (None when absent). Never blocks on a FIFO or a
    device, never reads more than `limit` bytes: OSError or ValueError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        return b"".join(chunks).decode("utf-8")
    finally:
        os.close(fd)


def check_saved(r: OverrideRecord) -> None:
    """ValueError unless `r` is a record riskgate itself could have written. The
    TTL bound is the largest any config allows, not today's `max_ttl_s`: a
    lower bound since then applies to new proposals, not to what is on record."""
    if r.state not in (*LIVE_STATES, *ENDED_STATES):
        raise ValueError(f"override {r.id!r}: state {r.state!r}")
    for name in ("id", "account", "reason", "proposed_by", "proposed_at"):
        if not isinstance(getattr(r, name), str) or not getattr(r, name):
            raise ValueError(f"override {r.id!r}: {name} missing")
    for name in ("approved_by", "approved_at", "expires_at", "ended_by"):
        if getattr(r, name) is not None and not isinstance(getattr(r, name), str):
            raise ValueError(f"override {r.id!r}: {name} is not text")
    when(r.proposed_at)
    if isinstance(r.ttl_s, bool) or not isinstance(r.ttl_s, (int, float)) or not 0 < r.ttl_s <= MAX_SAVED_TTL_S:
        raise ValueError(f"override {r.id!r}: ttl_s {r.ttl_s!r} outside (0, {MAX_SAVED_TTL_S:g}]")
    if r.expires_at is not None:
        when(r.expires_at)
    if r.state == "active":
        if not r.approved_by or r.approved_by.casefold() == r.proposed_by.casefold() or not r.approved_at:
            raise ValueError(f"override {r.id!r}: active without a second operator's approval")
        if r.expires_at is None or abs((when(r.expires_at) - when(r.approved_at)).total_seconds() - r.ttl_s) > 1:
            raise ValueError(f"override {r.id!r}: its end is not its approval plus its ttl_s")


def _record(row: Any) -> OverrideRecord:
    if not isinstance(row, dict):
        raise ValueError(f"expected an object, got {type(row).__name__}")
    record = OverrideRecord(**row)
    check_saved(record)
    return record


class OverrideFiles:
    """Reads and writes the live overrides and their history in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.live_path = folder / OVERRIDES_FILE
        self.history_path = folder / HISTORY_FILE
        self._history_lines = 0  # lines in the history file now (pruned when it doubles HISTORY_KEPT)

    def load(self) -> tuple[dict[str, OverrideRecord], deque[OverrideRecord]]:
        """(live records by id, recent ended ones oldest first). Never raises."""
        live, ended = self._read_live()
        history = self._read_history()
        if ended:  # an older file kept ended records beside the live ones: they move to the history
            history.extend(ended)
            try:
                self.append_history(ended, history)
                self.save_live(live)
                log.info("overrides_history_moved", path=str(self.history_path), records=len(ended))
            except OSError as exc:
                log.error("overrides_history_not_moved", error=f"{type(exc).__name__}: {exc}")
        return live, deque(history, maxlen=HISTORY_KEPT)

    def _read_live(self) -> tuple[dict[str, OverrideRecord], list[OverrideRecord]]:
        path = self.live_path
        try:
            text = read_small_file(path, _MAX_LEGACY_FILE)
            rows = json.loads(text) if text is not None else []
            if not isinstance(rows, list):
                raise ValueError(f"expected a JSON list, got {type(rows).__name__}")
        except Exception as exc:  # noqa: BLE001 - any damage to the file: nothing from it is trusted
            log.error("overrides_unreadable", path=str(path), error=f"{type(exc).__name__}: {exc}"[:300],
                      effect="no override is active")  # fmt: skip
            return {}, []
        live: dict[str, OverrideRecord] = {}
        ended: list[OverrideRecord] = []
        for i, row in enumerate(rows):
            try:
                record = _record(row)
                if record.id in live:
                    raise ValueError(f"override {record.id!r} appears twice")
            except Exception as exc:  # noqa: BLE001 - this record only; the others stand
                log.error("override_record_unreadable", path=str(path), index=i,
                          error=f"{type(exc).__name__}: {exc}"[:300], effect="that override is not active")  # fmt: skip
                continue
            if record.state in LIVE_STATES:
                live[record.id] = record
            else:
                ended.append(record)
        return live, ended

    def _read_history(self) -> list[OverrideRecord]:
        try:
            text = read_small_file(self.history_path, _MAX_LEGACY_FILE)
        except (OSError, ValueError) as exc:
            log.error("overrides_history_unreadable", path=str(self.history_path), error=str(exc)[:300])
            return []
        if text is None:
            return []
        lines = text.splitlines()
        self._history_lines = len(lines)
        records: list[OverrideRecord] = []
        for line in lines[-HISTORY_KEPT:]:
            with contextlib.suppress(Exception):  # a torn last line after a crash: skipped
                record = _record(json.loads(line))
                if record.state in ENDED_STATES:  # the history holds ended ones only: nothing in it can run
                    records.append(record)
        if len(lines) > 2 * HISTORY_KEPT:
            self._prune(records)
        return records

    def _prune(self, kept: Iterable[OverrideRecord]) -> None:
        """Rewrite the history with only `kept` (the journal has the rest)."""
        kept = list(kept)[-HISTORY_KEPT:]
        try:
            write_atomically(self.history_path, "".join(_line(r) for r in kept))
            self._history_lines = len(kept)
        except OSError as exc:
            log.error("overrides_history_not_pruned", error=f"{type(exc).__name__}: {exc}")

    def save_live(self, live: dict[str, OverrideRecord]) -> None:
        """Replace the live file (OSError if it could not be)."""
        write_atomically(self.live_path, [asdict(r) for r in live.values()])

    def append_history(self, records: Iterable[OverrideRecord], recent: Iterable[OverrideRecord] = ()) -> None:
        """Append ended records, one line each, and fsync (OSError if not). Once
        the file holds twice `HISTORY_KEPT`, it is rewritten with `recent` only."""
        records = list(records)
        text = "".join(_line(r) for r in records)
        if not text:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._history_lines += len(records)
        if self._history_lines > 2 * HISTORY_KEPT:
            self._prune(recent)


def _line(record: OverrideRecord) -> str:
    return json.dumps(asdict(record), sort_keys=True) + "\n"
