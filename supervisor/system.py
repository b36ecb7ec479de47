"""System: the composition root. One place builds every part, in dependency order,
starts them in that order and stops them in reverse.

The parts, bottom up: the journal's queue (and its actor, started first and
stopped last), the runtime (the one `Gate`, the link every source posts through,
the ESS board, the actors and their supervisor), the state-folder lock, the
state reader, the health log, the decision rates, the metrics, the operator
controls, the alerts and the HTTP API. `RiskSupervisor` (supervisor.facade) is
the handle an execution service holds on it.

A start that fails part way stops what it had started, in reverse, and raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pykka

from actors.journal import JournalActor
from actors.messages import Flush
from supervisor.channels.journal_queue import JournalQueue
from supervisor.clock import Clock
from supervisor.config import Config, ConfigError, changed_keys, load_config
from supervisor.deciding import GateDecider
from supervisor.gate import Gate
from supervisor.journal.recall import recall_state
from supervisor.logs import get_logger
from supervisor.ops.alerting import Alerting
from supervisor.ops.control_files import write_atomically
from supervisor.ops.controls import ControlError, OperatorControls
from supervisor.ops.health import HealthLog
from supervisor.ops.metrics import MetricsRegistry
from supervisor.ops.shadow import ShadowCollector, ShadowRunner
from supervisor.ops.state import DecisionRates, StateReader
from supervisor.runtime.shared import SharedParts
from supervisor.runtime.supervision import ActorSpec
from supervisor.runtime.wiring import Runtime
from supervisor.sources.baseline_store import StateLock

if TYPE_CHECKING:
    from supervisor.api.server import ApiServer
    from supervisor.api.service import GateService

__all__ = ["RESTART_ONLY", "System"]

log = get_logger("riskgate.supervisor")

# Sections (or keys) a reload cannot change: they shape running actors, files
# and sockets. A reload that changes one is refused; a restart applies it.
RESTART_ONLY = (
    "risk_v3.url",
    "risk_v3.poll_interval_s",
    "risk_v3.timeout_s",
    "prices.url",
    "prices.exchange",
    "prices.poll_interval_s",
    "prices.timeout_s",
    "ess.url",
    "ess.kill_switch_file",
    "ess.poll_interval_s",
    "ess.timeout_s",
    "ess.contract",
    "ess.path",
    "accounts.snapshot_url",
    "accounts.poll_interval_s",
    "accounts.timeout_s",
    "periods",
    "state",
    "store",
    "instance",
    "health",
    "supervision",
    "journal",
    "api.enabled",
    "api.host",
    "api.port",
    "api.max_connections",
    "api.operator_reserve",
    "api.request_timeout_s",
    "api.order_socket",
    "api.order_socket_idle_s",
    "metrics",
    "alerts",
)


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    start: Callable[[], object]
    stop: Callable[[], object]


def _nothing() -> None:
    return None


class System:
    # Which journal actor to run: tests put a subclass with test-only messages here.
    journal_actor_class: type[JournalActor] = JournalActor

    def __init__(
        self,
        config: Config,
        clock: Clock,
        transport: httpx.BaseTransport | None,
        poll_upstreams: bool,
        service: GateService,
        api: bool = False,
    ) -> None:
        """`service` is what the HTTP API serves (the facade); `api=True` serves
        it from `start()` at `[api] host:port`."""
        self.config = config
        self.clock = clock
        # The journal: every decision and the events that explain them, written
        # off the decision path by its own actor, started first and stopped last.
        j = config.journal
        self.journal = JournalQueue(j.max_queue, block_when_failing=j.enabled and j.on_failure == "block")
        self.journal.flush_now = self._flush_now
        journal_spec = ActorSpec(
            "journal",
            lambda: self.journal_actor_class.start(config, clock, self.journal),
            poll=Flush,
            poll_interval_s=j.flush_interval_s,
        )
        self.runtime = Runtime(config, clock, transport, poll_upstreams, self.journal, [journal_spec])
        self.gate: Gate = self.runtime.gate
        # What answers orders, for the facade and the API alike.
        self.decider = GateDecider(config, clock, self.gate, self.journal, lambda: self.runtime.supervisor.ref("gate"))
        self.state_lock = StateLock(config.state.dir)
        counters = self.runtime.counters
        self.rates = DecisionRates(counters, clock) if counters is not None else None
        self.controls = OperatorControls(config, clock, self.runtime.board, self.runtime.link, self.journal,
                                         self.runtime.publish_ess)  # fmt: skip
        self.state_reader = StateReader(self.runtime, clock, self.rates, self.controls.halt_status)
        self.health_log = HealthLog(self.runtime, clock, config.health.interval_s, self.state_reader.readiness)
        self.metrics = MetricsRegistry(self.state_reader, counters)
        # Several instances (store.backend = "postgresql", docs/scale-out.md): the shared store's
        # keeper (rounds: heartbeat, leases, the shared halt), its listener and the journal's shipper.
        self.shared: SharedParts | None = None
        if config.store.shared:
            self.shared = SharedParts(config, clock, self.runtime, self.controls, self.state_reader)
        # Alerts to people (docs/operations.md#alerts): watches from outside the decision path.
        self.alerting = Alerting(self.runtime, clock) if config.alerts.enabled else None
        # The shadow (docs/replay.md): the orders decided again under a candidate config, in a
        # process of its own that follows the journal; never on the decision path.
        self.shadow = ShadowRunner(config, clock, self.journal)
        self.metrics.registry.register(ShadowCollector(self.shadow))
        self._service = service
        self._want_api = api
        self.api: ApiServer | None = None
        self._started: list[_Part] = []
        self._life = threading.RLock()  # start and stop, one at a time (re-entrant: serve_api from a part)
        self._reload_lock = threading.Lock()
        self._promote_lock = threading.Lock()

    # -- life cycle ------------------------------------------------------------------
    def _parts(self) -> list[_Part]:
        """Every part, in the order it starts (it stops in reverse)."""
        parts = [_Part("state folder lock", self.state_lock.acquire, self.state_lock.release)]
        if self._want_api and self.api is None:
            # The port first: a taken one fails the start before any actor runs.
            parts.append(_Part("api socket", self._bind_api, self._stop_api))
        parts += [
            _Part("config event", self._config_loaded, _nothing),
        ]
        if self.shared is not None:
            # Before the gate opens: this instance's name taken (a second process with it refuses
            # to start), the schema checked; stopped after the actors: the leases go back last.
            parts.append(_Part("shared store", self.shared.start, self.shared.stop))
        parts += [
            # Every persisted block before the gate opens: the orders approved in the last
            # window, from the journal (duplicates, caps), as the gate's state; then the
            # operator halt on the ESS board and the running overrides, posted to it.
            _Part("recall", self._recall, _nothing),
            _Part("controls", self.controls.load, _nothing),
            _Part("actors", self.runtime.start, self.runtime.stop),
            _Part("halt timer", self.controls.start, self.controls.stop),  # re-publishes the halt reading
            _Part("health log", self.health_log.start, self.health_log.stop),
        ]
        if self.rates is not None:
            parts.append(_Part("decision rates", self.rates.start, self.rates.stop))
        if self.alerting is not None:
            parts.append(_Part("alerts", self.alerting.start, self.alerting.stop))
        if self.config.journal.enabled:
            parts.append(_Part("shadow", self.shadow.start, self.shadow.stop))
        if self._want_api:
            parts.append(_Part("api", self._serve_api, self._stop_api))
        return parts

    def start(self) -> bool:
        """Start every part in order; one that fails is stopped too (it may have started
        some of itself), then those started, in reverse, and the error is raised. One
        start or stop at a time; a start while started does nothing (False)."""
        with self._life:
            if self._started:
                return False
            for part in self._parts():
                try:
                    part.start()
                except BaseException:
                    self._started.append(part)  # what it started of itself stops with the rest
                    self._stop_started()
                    raise
                self._started.append(part)
            log.info("supervisor_started", accounts=len(self.config.accounts.accounts))
            return True

    def stop(self) -> None:
        """Stop what started, in reverse order (each stop on its own: one that raises is logged)."""
        with self._life:
            self._stop_started()
        log.info("supervisor_stopped")

    def _stop_started(self) -> None:
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - the other parts still stop
                log.error("part_stop_failed", part=part.name, error=repr(exc))

    def _config_loaded(self) -> None:
        self.runtime.event("config_loaded", "riskgate", origin=self.config.origin, sha256=self.config.digest or None)

    def _recall(self) -> None:
        if not self.config.journal.enabled:
            log.warning("gate_memory_not_recalled", why="journal.enabled = false: ids approved before this start "
                        "are not known as duplicates, nor in-flight orders against the caps")  # fmt: skip
            return
        try:
            state, recalled = recall_state(self.config, self.clock)
        except Exception as exc:  # noqa: BLE001 - never a failed start; said, and journaled
            # With journal.on_failure = "block" a journal that cannot be used blocks orders anyway.
            why = f"{type(exc).__name__}: {exc}"[:300]
            log.error("gate_memory_not_recalled", why=why)
            self.runtime.event("gate_memory_not_recalled", "journal", why=why)
            return
        self.runtime.seed(state, recalled.at)
        if recalled.approvals or recalled.resting or recalled.skipped:
            figures: dict[str, Any] = {
                "approvals": recalled.approvals,
                "resting": recalled.resting,
                "skipped": recalled.skipped,
                "reservations": len(state.reservations),
            }
            (log.warning if recalled.skipped else log.info)("gate_memory_recalled", **figures)
            self.runtime.event("gate_memory_recalled", "journal", None, **figures)

    # -- the HTTP API --------------------------------------------------------------------
    def new_api_server(self, host: str | None, port: int | None) -> ApiServer:
        from supervisor.api.server import ApiServer  # imported when used: uvicorn loads only then

        api = self.config.api
        host, port = api.host if host is None else host, api.port if port is None else port
        return ApiServer(self._service, host, port, self.decider)

    def _bind_api(self) -> None:
        self.api = self.new_api_server(None, None).bind()

    def _serve_api(self) -> None:
        if self.api is not None:
            self.api.start()

    def _stop_api(self) -> None:
        if self.api is not None:
            self.api.stop()  # only bound: closes the socket
            self.api = None

    def serve_api(self, host: str | None = None, port: int | None = None) -> ApiServer:
        """Serve the HTTP API now (stopped by `stop()`); `port=0` picks a free port."""
        with self._life:
            if self.api is None:
                self.api = self.new_api_server(host, port)
                self._started.append(_Part("api", _nothing, self._stop_api))
            return self.api.start()

    # -- the journal ---------------------------------------------------------------------
    def _flush_now(self) -> None:
        ref = self.runtime.supervisor.ref("journal")
        if ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):  # a dead journal is restarted by supervision
                ref.tell(Flush())

    def flush_journal(self, timeout: float = 10.0) -> int:
        """Write what the journal holds now and wait for it; how many records were written."""
        ref = self.runtime.supervisor.ref("journal")
        return 0 if ref is None else cast("int", ref.ask(Flush(), timeout=timeout))

    # -- reading and steering ----------------------------------------------------------------
    def state(self, timeout: float = 1.0) -> dict[str, Any]:
        """Sources, risk level, ESS, accounts against their limits, actors, journal,
        alerts, the operator halt and the overrides (GET /v1/state)."""
        doc = self.state_reader.document(timeout)
        doc["alerts"] = self.alerting.status() if self.alerting is not None else {"enabled": False}
        doc["operator_halt"] = self.controls.halt_status()
        doc["store"] = self.shared.keeper.describe() if self.shared is not None else {"backend": "sqlite"}
        doc["overrides"] = {
            state: [asdict(r) for r in self.controls.overrides() if r.state == state]
            for state in ("active", "proposed")
        }
        doc["shadow"] = self.shadow.summary()
        return doc

    def health(self, timeout: float = 1.0) -> dict[str, Any]:
        """Each actor's row (alive, restarts, last_error, state_age_s), the gate's
        decision counts since the last health log, and the ESS state."""
        out: dict[str, Any] = {row["actor"]: row for row in self.runtime.supervisor.rows()}
        stats = self.runtime.gate_stats(reset=False, timeout=timeout)
        if "gate" in out:
            if stats is None:
                out["gate"]["alive"] = False
            else:
                out["gate"].update(stats)
        missing = self.state_reader.readiness()
        out["readiness"] = {"ready": not missing, "missing": missing}
        current = self.runtime.board.current
        out["ess"] = {
            "active": current.state.active if current else None,
            "age_s": self.clock.monotonic() - current.received if current else None,
        }
        return out

    def reload(self, path: str | Path | None, by: str) -> tuple[Config, list[str]]:
        """Read, validate and swap in a config (see RiskSupervisor.reload); the new
        config and the keys that changed."""
        with self._reload_lock:
            origin = Path(path) if path is not None else Path(self.config.origin)
            old = self.config
            try:
                new = load_config(origin)
            except ConfigError as exc:
                self.runtime.event("config_reload_refused", "riskgate", by=by, problems=exc.problems)
                log.warning("config_reload_refused", by=by, problems=exc.problems)
                raise
            changed = changed_keys(old, new)
            frozen = [k for k in changed if any(k == r or k.startswith(r + ".") for r in RESTART_ONLY)]
            if frozen:
                problems = [f"{k}: changed; restart required to apply it (nothing was reloaded)" for k in frozen]
                self.runtime.event("config_reload_refused", "riskgate", by=by, problems=problems)
                log.warning("config_reload_refused", by=by, problems=problems)
                raise ConfigError(problems, str(origin))
            # The gate first: an order validated with the old config after this
            # point is validated again by the gate against the new one.
            self.runtime.reconfigure(new)
            self.decider.config = new  # after the gate: an order validated with the old one is validated again there
            self.controls.reconfigure(new)
            if self.shared is not None:
                self.shared.keeper.reconfigure(new)  # the caps it leases
            self.shadow.reconfigure(new)  # a changed candidate: the shadow starts again
            self.config = new
            self.runtime.event("config_reload", "riskgate", by=by, sha256=new.digest, changed=changed)
            log.info("config_reloaded", by=by, sha256=new.digest, changed=changed)
            return new, changed

    def promote_shadow(self, by: str, reason: str) -> dict[str, Any]:
        """The shadow's candidate becomes the live config: its file's bytes replace the live
        config file (the old one kept beside it) and are reloaded. `ControlError` 409 when
        there is no shadow or it is not running, the candidate changed since the shadow read it,
        the live config is not a file, or the candidate does not load or changes a restart-only
        key (then nothing is written)."""
        with self._promote_lock:  # one promotion at a time: each keeps its own backup of what was live
            return self._promote_shadow(by, reason)

    def _promote_shadow(self, by: str, reason: str) -> dict[str, Any]:
        live = self.config
        candidate = live.shadow.config
        if candidate is None:
            raise ControlError(409, "no shadow config to promote ([shadow] config is not set)")
        summary = self.shadow.summary()
        if summary["state"] != "running":
            raise ControlError(409, f"the shadow is not running ({summary['problem'] or summary['state']}): "
                               "promote a candidate the shadow has been deciding under")  # fmt: skip
        origin = Path(live.origin)
        if not origin.is_file():
            raise ControlError(409, f"the live config was not read from a file ({live.origin}): nothing to replace")
        try:
            raw = candidate.read_bytes()
            text = raw.decode("utf-8")
            proposed = load_config(candidate)
        except (OSError, UnicodeDecodeError) as exc:
            raise ControlError(409, f"the shadow config {candidate} cannot be read: {exc}") from exc
        except ConfigError as exc:
            raise ControlError(409, f"the shadow config {candidate} is not valid: {'; '.join(exc.problems)}") from exc
        if hashlib.sha256(raw).hexdigest() != summary["candidate_sha256"]:
            why = "its disagreements are not this file's: reload, let the shadow decide under it, then promote"
            raise ControlError(409, f"the shadow config {candidate} changed since the shadow read it ({why})")
        changed = changed_keys(live, proposed)
        frozen = [k for k in changed if any(k == r or k.startswith(r + ".") for r in RESTART_ONLY)]
        if frozen:
            raise ControlError(409, f"the shadow config changes restart-only keys ({', '.join(frozen)}): "
                               "promote it by a restart with it as the config")  # fmt: skip
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S.%fZ")
        backup = origin.with_name(f"{origin.name}.before-promote-{stamp}")
        n = 1
        while backup.exists():  # never over an earlier promotion's backup
            backup, n = origin.with_name(f"{origin.name}.before-promote-{stamp}-{n}"), n + 1
        try:
            old = origin.read_text(encoding="utf-8")
            mode = stat.S_IMODE(origin.stat().st_mode)  # the new file is created 0600: the old one's mode kept
            write_atomically(backup, old)
            os.chmod(backup, mode)
            write_atomically(origin, text)
            os.chmod(origin, mode)
        except OSError as exc:
            raise ControlError(409, f"cannot replace {origin}: {exc}") from exc
        try:
            new, changed = self.reload(origin, by)
        except ConfigError as exc:
            write_atomically(origin, old)  # what was live stays live
            raise ControlError(409, f"the promoted config was refused: {'; '.join(exc.problems)}") from exc
        self.runtime.event("shadow_promoted", "riskgate", by=by, reason=reason, candidate=str(candidate),
                           sha256=new.digest, previous=live.digest or None, backup=str(backup),
                           changed=changed)  # fmt: skip
        log.warning("shadow_promoted", by=by, reason=reason, candidate=str(candidate), changed=changed)
        return {"promoted": str(candidate), "sha256": new.digest, "backup": str(backup), "changed": changed}
