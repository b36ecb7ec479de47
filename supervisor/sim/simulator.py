"""A loopback simulator of riskgate's three upstreams, for tests and demos.

It serves Global Risk v3 (`GET /risk/global`), the ESS status endpoint
(`GET /api/emergency/status`, and the risk-safety service's
`GET /api/risk/ess/status` with the same halt) and account snapshots
(`GET /accounts/{name}/snapshot`) from the shipped real payloads, the prices
source (`GET /prices`: riskgate's prices contract, docs/prices.md), and takes
control requests to change what they answer:

    POST /control/risk      {"level": "info" | "warning" | "critical" | null}
    POST /control/ess       {"active": true | false, "reason": "..."}
    POST /control/accounts/{name}   {"equity": 10000, "positions": [{"symbol", "exchange", "quantity", "mark_price"}]}
    POST /control/prices    {"prices": {"BTCUSDT": 65000.0, ...}}   (merged; a null price removes it)
    POST /control/fault     {"target": "risk" | "ess" | "accounts" | "prices" | "all", "mode": MODE, "delay_s": 3}
    GET  /control/state

Fault modes: none, down (connection closed without an answer), slow (answer
after delay_s), 500, garbage (a non-JSON body), huge (a body over 1 MiB),
unknown_level and missing_level (risk), stale (risk and prices: a timestamp
delay_s old, as a service that stopped evaluating), unavailable (ESS:
"available": false).

Like the real service, /risk/global answers 404 until a risk state is set, and
re-evaluates every `reevaluate_s` (the signal's timestamp moves only then).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from supervisor.clock import Clock, SystemClock
from supervisor.logs import get_logger

__all__ = ["FAULT_MODES", "UpstreamSimulator", "sample_payload"]

log = get_logger("riskgate.simulator")

FAULT_MODES = frozenset(
    {"none", "down", "slow", "500", "garbage", "huge", "unknown_level", "missing_level", "stale", "unavailable"}
)
TARGETS = ("risk", "ess", "accounts", "prices")
_ACCOUNT_PATH = re.compile(r"^/accounts/([^/]+)/snapshot$")
_CONTROL_ACCOUNT_PATH = re.compile(r"^/control/accounts/([^/]+)$")


def sample_payload(name: str) -> Any:
    """One of the shipped upstream payloads (real answers of the services; see docs/upstream.md)."""
    text = resources.files("supervisor.sim").joinpath("samples", name).read_text(encoding="utf-8")
    return json.loads(text)


class UpstreamSimulator:
    """The three upstream APIs on one loopback port. `port=0` picks a free one."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, clock: Clock | None = None, reevaluate_s: float = 300.0
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.reevaluate_s = reevaluate_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._risk_level: str | None = None
        self._evaluated_at = self.clock.now()
        self._ess_active = False
        self._ess_reason = ""
        self._accounts: dict[str, dict[str, Any]] = {}
        self._prices: dict[str, Any] = {}
        self._faults: dict[str, tuple[str, float]] = dict.fromkeys(TARGETS, ("none", 0.0))
        self._samples = {
            level: sample_payload(f"risk_global_{level}.json") for level in ("info", "warning", "critical")
        }
        self._not_found = sample_payload("risk_global_404.json")
        self._ess_samples = {
            True: sample_payload("ess_status_active.json"),
            False: sample_payload("ess_status_inactive.json"),
        }
        self._safety_samples = {
            True: sample_payload("risk_safety/ess_risk_safety_tripped.json"),
            False: sample_payload("risk_safety/ess_risk_safety_armed.json"),
        }
        self._safety_uninitialised = sample_payload("risk_safety/ess_risk_safety_uninitialised.json")
        self._connections: set[Any] = set()
        self._server = _QuietServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> UpstreamSimulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="upstream-simulator", daemon=True
        )
        self._thread.start()
        log.info("simulator_started", url=self.url)
        return self

    def stop(self) -> None:
        """Stop as a crashed service would: the port refuses, open connections drop."""
        self._stopping.set()  # releases slow answers
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(2)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> UpstreamSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control ---------------------------------------------------------------
    def set_risk(self, level: str | None) -> None:
        """Serve the shipped payload for `level` (info/warning/critical), evaluated now; None = 404."""
        if level is not None and level.lower() not in self._samples:
            raise ValueError(f"unknown risk level {level!r}")
        with self._lock:
            self._risk_level = level.lower() if level else None
            self._evaluated_at = self.clock.now()

    def set_ess(self, active: bool, reason: str = "") -> None:
        with self._lock:
            self._ess_active = bool(active)
            self._ess_reason = reason

    def set_account(self, name: str, equity: float, positions: list[dict[str, Any]] | None = None) -> None:
        with self._lock:
            self._accounts[name] = {"equity": float(equity), "positions": list(positions or [])}

    def set_prices(self, prices: Any) -> None:
        """Merge `prices` (symbol -> price; None removes the symbol) into what /prices answers.
        Any value is served as given: a test may serve garbage on purpose."""
        if not isinstance(prices, dict):
            raise ValueError("prices must be a JSON object of symbol -> price")
        with self._lock:
            for symbol, price in prices.items():
                if price is None:
                    self._prices.pop(str(symbol), None)
                else:
                    self._prices[str(symbol)] = price

    def set_fault(self, target: str, mode: str, delay_s: float = 5.0) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        targets = TARGETS if target == "all" else (target,)
        for t in targets:
            if t not in TARGETS:
                raise ValueError(f"unknown fault target {target!r}")
        with self._lock:
            for t in targets:
                self._faults[t] = (mode, float(delay_s))

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "risk_level": self._risk_level,
                "ess_active": self._ess_active,
                "accounts": {k: dict(v) for k, v in self._accounts.items()},
                "prices": dict(self._prices),
                "faults": {t: {"mode": m, "delay_s": d} for t, (m, d) in self._faults.items()},
            }

    # -- answers -----------------------------------------------------------------
    def fault(self, target: str) -> tuple[str, float]:
        with self._lock:
            return self._faults[target]

    def wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def risk_answer(self) -> tuple[int, Any]:
        with self._lock:
            level = self._risk_level
            if level is None:
                return 404, self._not_found
            now = self.clock.now()
            # The real service re-evaluates every reevaluate_s and serves the same signal in between.
            elapsed = (now - self._evaluated_at).total_seconds()
            if elapsed >= self.reevaluate_s:
                self._evaluated_at += timedelta(seconds=self.reevaluate_s * int(elapsed // self.reevaluate_s))
            body = dict(self._samples[level])
            evaluated = self._evaluated_at
            mode, delay = self._faults["risk"]
        if mode == "stale":
            evaluated = now - timedelta(seconds=delay)
        body["timestamp"] = evaluated.replace(tzinfo=None).isoformat()  # naive UTC, as the service sends
        if mode == "unknown_level":
            body["risk_level"] = "PANIC"
        elif mode == "missing_level":
            body.pop("risk_level", None)
        return 200, body

    def ess_answer(self) -> tuple[int, Any]:
        with self._lock:
            active, reason = self._ess_active, self._ess_reason
            mode, _ = self._faults["ess"]
        body = dict(self._ess_samples[active])
        if active:
            body["timestamp"] = self.clock.now().replace(tzinfo=None).isoformat()
            if reason:
                body["reason"] = reason
        if mode == "unavailable":
            body = {"available": False, "error": "ESS not initialised"}
        return 200, body

    def risk_safety_answer(self) -> tuple[int, Any]:
        """The risk-safety service's ESS: TRIPPED while the halt is on, else ARMED."""
        with self._lock:
            active, reason = self._ess_active, self._ess_reason
            mode, _ = self._faults["ess"]
        if mode == "unavailable":
            return 200, dict(self._safety_uninitialised)
        body = dict(self._safety_samples[active])
        if active and reason:
            body["trip_reason"] = reason
        return 200, body

    def prices_answer(self) -> tuple[int, Any]:
        with self._lock:
            prices = dict(self._prices)
            mode, delay = self._faults["prices"]
        now = self.clock.now()
        if mode == "stale":
            now -= timedelta(seconds=delay)
        return 200, {"timestamp": now.isoformat(), "prices": prices}

    def account_answer(self, name: str) -> tuple[int, Any]:
        with self._lock:
            acct = self._accounts.get(name)
        if acct is None:
            return 404, {"error": "Resource not found", "detail": f"no account {name}"}
        return 200, {
            "account": name,
            "equity": acct["equity"],
            "timestamp": self.clock.now().isoformat(),
            "positions": acct["positions"],
        }


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a timeout, a body it refused to read) is expected here.
        log.debug("simulator_client_gone", client=str(client_address))


def _handler_for(sim: UpstreamSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "riskgate-upstream-simulator"
        # One segment per answer and no Nagle: otherwise headers and body go out
        # separately and the client's delayed ACK adds ~40 ms to every request.
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024

        def setup(self) -> None:
            super().setup()
            with sim._lock:
                sim._connections.add(self.connection)

        def finish(self) -> None:
            with sim._lock:
                sim._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("simulator_request", line=format % args)

        def _send(self, status: int, body: Any, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, target: str, answer: Any) -> None:
            mode, delay = sim.fault(target)
            if mode == "down":
                self.close_connection = True
                self.connection.shutdown(2)  # as a crashed service: no answer at all
                return
            if mode == "slow":
                sim.wait(delay)
            if mode == "500":
                self._send(500, {"error": "Internal Server Error"})
            elif mode == "garbage":
                self._send(200, None, raw=b"<html>502 Bad Gateway</html>")
            elif mode == "huge":
                self._send(200, None, raw=b'{"pad": "' + b"x" * (1024 * 1024 + 16) + b'"}')
            else:
                self._send(*answer())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/risk/global":
                self._serve("risk", sim.risk_answer)
            elif path == "/api/emergency/status":
                self._serve("ess", sim.ess_answer)
            elif path == "/api/risk/ess/status":
                self._serve("ess", sim.risk_safety_answer)
            elif (m := _ACCOUNT_PATH.match(path)) is not None:
                self._serve("accounts", lambda: sim.account_answer(m.group(1)))
            elif path == "/prices":
                self._serve("prices", sim.prices_answer)
            elif path == "/control/state":
                self._send(200, sim.state())
            else:
                self._send(404, {"error": "Resource not found"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                if path == "/control/risk":
                    sim.set_risk(body.get("level"))
                elif path == "/control/ess":
                    sim.set_ess(bool(body.get("active")), str(body.get("reason") or ""))
                elif (m := _CONTROL_ACCOUNT_PATH.match(path)) is not None:
                    sim.set_account(m.group(1), float(body["equity"]), body.get("positions") or [])
                elif path == "/control/prices":
                    sim.set_prices(body.get("prices"))
                elif path == "/control/fault":
                    sim.set_fault(
                        str(body.get("target", "all")), str(body.get("mode", "none")), float(body.get("delay_s", 5.0))
                    )
                else:
                    self._send(404, {"error": "Resource not found"})
                    return
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, sim.state())

    return Handler
