"""The shadow's keeper in the live process: starts `python -m supervisor.shadow` (a process of
its own: never the gate's thread, nor its GIL), reads what it says, journals each
disagreement (`shadow_disagreement`), counts them for /metrics and /v1/shadow, and starts it
again on a reload that changed the candidate (its file's bytes or path).

A shadow that fails (a candidate that does not load, a journal it cannot read, a crash) is
journaled (`shadow_failed`), shown in /v1/shadow, and started again after a back-off
(10 s, doubling to 5 min): the live answers never depend on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.journal.store import JOURNAL_NAME, from_us
from supervisor.logs import get_logger

__all__ = ["ShadowCollector", "ShadowRunner"]

log = get_logger("riskgate.shadow")

_EXAMPLES = 50  # the latest disagreements kept for /v1/shadow
_BACKOFF_S = (10.0, 300.0)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ShadowRunner:
    def __init__(self, config: Config, clock: Clock, journal: JournalQueue) -> None:
        self._config = config
        self._clock = clock
        self._journal = journal
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every line read (tests wait on it)
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._retry: threading.Timer | None = None
        self._backoff = _BACKOFF_S[0]
        self._running = False
        self.candidate: Path | None = None
        self.candidate_sha256: str | None = None
        self.seq = 0  # the last journal seq the shadow has decided up to
        self.reported_from = 0
        self.decided = 0  # since this runner started (a restarted shadow counts on from here)
        self.disagreements: Counter[tuple[str, str]] = Counter()  # (live code, shadow code) -> count
        self.transitions: Counter[tuple[str, str, str, str]] = Counter()
        self.latest: deque[dict[str, Any]] = deque(maxlen=_EXAMPLES)
        self.problem: str | None = None
        self.failures = 0  # journaled as shadow_failed since this runner started
        self.unjournaled = 0  # disagreements counted but not journaled (the live queue had no room to spare)
        self.started_at: float | None = None
        self._base = 0  # decided before the current process started

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._running = True
        self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._running = False
            retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
        self._end_process()

    def reconfigure(self, config: Config) -> None:
        """A reloaded live config: the shadow starts again if its candidate changed."""
        with self._lock:
            old, self._config = self._config, config
        path = config.shadow.config
        if path != old.shadow.config or (path is not None and _digest(path) != self.candidate_sha256):
            self._end_process()
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            config = self._config
            path = config.shadow.config
            if not self._running or self._process is not None:
                return
            self.candidate, self.candidate_sha256 = path, _digest(path) if path is not None else None
            if path is None:
                self.problem = None
                return
            self.reported_from = self.seq
            self._base = self.decided
            args = [sys.executable, "-m", "supervisor.shadow", str(config.state.dir / JOURNAL_NAME),
                    self._journal.run, str(path), str(self.seq), str(config.shadow.poll_interval_s)]  # fmt: skip
            try:
                self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our module, our arguments
                    args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                )
            except OSError as exc:
                self._failed_locked(f"cannot start: {exc}")
                return
            self.problem = None
            self.started_at = self._clock.monotonic()
            stdout = self._process.stdout
            self._reader = threading.Thread(
                target=self._read, args=(self._process, stdout), name="shadow-reader", daemon=True
            )
            self._reader.start()
        self._journal.event(self._clock.now(), "shadow_started", "shadow", candidate=str(path),
                            sha256=self.candidate_sha256, report_after_seq=self.reported_from)  # fmt: skip
        log.info("shadow_started", candidate=str(path))

    def _end_process(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            reader, self._reader = self._reader, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()  # it ends when its stdin closes
        process.terminate()
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)
        if reader is not None:
            reader.join(5.0)

    # -- what the shadow says (its reader thread) --------------------------------------
    def _read(self, process: subprocess.Popen[str], stdout: IO[str] | None) -> None:
        if stdout is None:
            return
        for line in stdout:
            try:
                doc = json.loads(line)
                kind = doc["k"]
            except (ValueError, TypeError, KeyError):
                continue  # not ours: never a crash of the reader
            if kind == "disagreement":
                self._disagreement(doc)
            elif kind == "progress":
                with self._changed:
                    self.seq = max(self.seq, int(doc["seq"]))
                    self.decided = self._base + int(doc["decided"])
                    self._backoff = _BACKOFF_S[0]  # it works: a later failure starts the back-off anew
                    self._changed.notify_all()
            elif kind == "error":
                with self._changed:
                    self.problem = str(doc.get("why", ""))[:500]
                    self._changed.notify_all()
        code = process.wait()
        with self._changed:
            if self._process is not process:
                return  # stopped on purpose
            self._process = None
            why = self.problem or f"the shadow process exited with code {code}"
            self._failed_locked(why)
            self._changed.notify_all()

    def _disagreement(self, doc: dict[str, Any]) -> None:
        try:
            live, shadow = doc["live"], doc["shadow"]
            when = from_us(int(doc["ts_us"]))
            record: dict[str, Any] = {
                "time": when.isoformat(), "order_id": str(doc["order_id"]), "account": str(doc["account"]),
                "order": str(doc["order"]), "notional_usd": round(float(doc["notional_usd"]), 2),
                "live": [str(live[0]), str(live[1]), float(live[2])],
                "shadow": [str(shadow[0]), str(shadow[1]), float(shadow[2])], "reason": str(doc["reason"])[:500],
            }  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):
            return
        journal = self._journal
        # Journaled only while the queue has room to spare: a shadow that disagrees on everything
        # must never fill the live journal's queue (orders would block JOURNAL_UNAVAILABLE).
        room = len(journal) < journal.max_records // 2
        with self._changed:
            self.disagreements[(record["live"][1], record["shadow"][1])] += 1
            self.transitions[(record["live"][0], record["live"][1], record["shadow"][0], record["shadow"][1])] += 1
            self.latest.appendleft(record)
            if not room:
                self.unjournaled += 1
            self._changed.notify_all()
        if room:
            journal.event(self._clock.now(), "shadow_disagreement", "shadow", record["account"],
                          order_id=record["order_id"], live=record["live"], shadow=record["shadow"],
                          reason=record["reason"], candidate_sha256=self.candidate_sha256)  # fmt: skip

    def _failed_locked(self, why: str) -> None:
        """Holding the lock: said, journaled, and a start again after the back-off."""
        self.problem = why
        self.failures += 1
        delay, self._backoff = self._backoff, min(self._backoff * 2, _BACKOFF_S[1])
        self._journal.event(self._clock.now(), "shadow_failed", "shadow", why=why, retry_in_s=delay)
        log.error("shadow_failed", why=why, retry_in_s=delay)
        if self._running:
            self._retry = threading.Timer(delay, self._spawn)
            self._retry.daemon = True
            self._retry.start()

    # -- reading -----------------------------------------------------------------------
    def wait_until(self, ready: Any, timeout: float) -> bool:
        """Wait (real time, up to `timeout`) until `ready(self)` holds; for tests and tools."""
        with self._changed:
            return bool(self._changed.wait_for(lambda: ready(self), timeout))

    def summary(self) -> dict[str, Any]:
        with self._lock:
            enabled = self._config.shadow.config is not None
            total = sum(self.disagreements.values())
            return {
                "enabled": enabled,
                "candidate": str(self.candidate) if self.candidate is not None else None,
                "candidate_sha256": self.candidate_sha256,
                "state": "off" if not enabled else "failed" if self.problem else "running",
                "problem": self.problem,
                "decided": self.decided,
                "disagreements": total,
                "unjournaled": self.unjournaled,
                "journal_seq": self.seq,
                "transitions": [
                    {"from": [k[0], k[1]], "to": [k[2], k[3]], "count": n} for k, n in self.transitions.most_common(20)
                ],
                "latest": list(self.latest)[:20],
            }


class ShadowCollector(Collector):
    """/metrics: the shadow's orders decided and disagreements (by live and shadow reason code)."""

    def __init__(self, runner: ShadowRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[Metric]:
        runner = self._runner
        with runner._lock:  # a copy under its lock: never the gate's
            counts = dict(runner.disagreements)
            decided, problem = runner.decided, runner.problem
            enabled = runner.candidate is not None
        family = CounterMetricFamily(
            "risk_gate_shadow_disagreements",
            "Orders the shadow config decided otherwise than the live one, by both reason codes.",
            labels=("live_code", "shadow_code"),
        )
        for (live, shadow), n in sorted(counts.items()):
            family.add_metric((live, shadow), n)
        yield family
        yield CounterMetricFamily("risk_gate_shadow_decided", "Orders the shadow config decided again.", value=decided)
        yield GaugeMetricFamily(
            "risk_gate_shadow_up", "1 while a shadow config runs; 0 when it failed or none is set.",
            value=1.0 if enabled and problem is None else 0.0,
        )  # fmt: skip
