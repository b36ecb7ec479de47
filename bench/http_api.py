"""Section 9: the HTTP API, and the cost of metrics.

`POST /v1/evaluate` is also set beside the same listener's cheapest answer, `GET /healthz` (a
constant, answered in front of FastAPI), on the same connection: the HTTP path's floor.

`POST /v1/evaluate` on loopback to `riskgate`'s API (uvicorn in its own
process, every check done) beside the original per-order design (a GET of
`/risk/global`, then the same pure checks) against two Risk v3 servers in
their own processes: the stdlib simulator, and a stand-in on FastAPI (the
real service's stack). Interleaved in one run, one keep-alive standard-library
client each. Then
`RiskSupervisor.evaluate` with metrics on beside metrics off (one core).

`python -m bench.http_api` runs this section alone.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import control, pct, simulator_process
from bench.gate_latency import bench_config, fed_supervisor, order
from bench.original_design import PerOrderHttpGate
from supervisor.config import MetricsConfig, OperatorConfig, StateConfig
from supervisor.core.evaluate import evaluate_order
from supervisor.sources.upstream import parse_risk_signal

PIPELINE_DEPTH = 8  # orders per write in the pipelined subject
DESK_TOKEN = "bench-execution-client-token"  # noqa: S105 - the API checks it on every order, as in production


def serve() -> None:
    """The API process: a fed supervisor serving on a free port; prints its URL, runs until stdin closes."""
    from bench.common import quiet

    quiet()
    config = bench_config(100)
    desk = OperatorConfig("desk", hashlib.sha256(DESK_TOKEN.encode()).hexdigest())
    api = replace(config.api, clients={"desk": desk}, order_socket=sys.argv[sys.argv.index("--serve") + 1])
    sup = fed_supervisor(replace(config, api=api))
    server = sup.serve_api(host="127.0.0.1", port=0)
    print(server.url, flush=True)
    sys.stdin.read()
    sup.stop()


def socket_path() -> str:
    """Where this benchmark's API process (`--serve PATH`) listens for orders on its order socket."""
    return str(Path(tempfile.gettempdir()) / f"riskgate-bench-{os.getpid()}.sock")


def serve_risk_v3() -> None:
    """A Global Risk v3 stand-in on the real service's stack (FastAPI on uvicorn):
    GET /risk/global answers the recorded INFO payload, stamped now."""
    import socket
    from datetime import UTC, datetime

    import uvicorn
    from fastapi import FastAPI

    from supervisor.sim.simulator import sample_payload

    body = sample_payload("risk_global_info.json")
    app = FastAPI()

    @app.get("/risk/global")
    def risk_global() -> dict:
        return {**body, "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat()}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(sockets=[sock])


@contextmanager
def bench_process(flag: str, *args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http_api", flag, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not url.startswith("http://"):
            raise RuntimeError(f"{flag}: the process did not start: {url!r}")
        yield url
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.terminate()
        proc.wait(15)


class Http:
    """One keep-alive connection with the standard library's client (lighter than
    httpx, so the servers' own costs show): the same client for every subject."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=5)

    def get(self, path: str) -> Any:
        self._conn.request("GET", path)
        return json.loads(self._conn.getresponse().read())

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        self._conn.request("POST", path, body=body, headers=headers)
        return json.loads(self._conn.getresponse().read())


class PipelinedHttp:
    """HTTP/1.1 pipelining on one keep-alive TCP connection: `len(bodies)` requests sent in one
    write, then their answers read in order (uvicorn answers a connection's requests one by one)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=5)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")
        self._head = f"host: {host}:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def post_many(self, path: str, bodies: list[bytes]) -> list[Any]:
        self._sock.sendall(
            b"".join(
                f"POST {path} HTTP/1.1\r\n{self._head}content-length: {len(b)}\r\n\r\n".encode() + b for b in bodies
            )
        )
        answers = []
        for _ in bodies:
            status = self._file.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := self._file.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answers.append(json.loads(self._file.read(length)))
        return answers


class OrderSocketClient:
    """One persistent connection to the order socket (supervisor.api.order_socket): a line out, a line back."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._file = self._sock.makefile("rb")
        assert self.ask(json.dumps({"token": DESK_TOKEN}).encode())["client"] == "desk"

    def ask(self, line: bytes) -> Any:
        self._sock.sendall(line + b"\n")
        return json.loads(self._file.readline())


class PerOrderGate(PerOrderHttpGate):
    """The original design: Risk v3 fetched for every order, then the checks."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.http = Http(url)

    def evaluate(self, raw: dict) -> Any:
        self.state.signal = parse_risk_signal(self.http.get("/risk/global"))
        now = self.clock.monotonic()
        self.state.signal_received = self.state.ess_received = now
        for book in self.state.books.values():
            book.received = now
        return evaluate_order(raw, self.state, self.config, now, self.clock.now()).result


def http_vs_original(n: int = 2_000) -> dict[str, float]:
    """POST /v1/evaluate beside the per-order design against two Risk v3 servers:
    the stdlib simulator, and a stand-in on FastAPI (the real service's stack)."""
    with (
        simulator_process("--risk", "info") as sim_url,
        bench_process("--serve-risk-v3") as fastapi_url,
        bench_process("--serve", socket_path()) as api_url,
    ):
        control(sim_url, "/control/risk", {"level": "info"})
        originals = {"original": PerOrderGate(sim_url), "original_fastapi": PerOrderGate(fastapi_url)}
        api = Http(api_url)
        lines = OrderSocketClient(socket_path())
        headers = {"content-type": "application/json", "authorization": f"Bearer {DESK_TOKEN}"}
        pipelined = PipelinedHttp(api_url, headers)
        orders = [order(i) for i in range(1000)]
        bodies = [json.dumps(o).encode() for o in orders]

        def over_http(i: int) -> str:
            return str(api.post("/v1/evaluate", bodies[i], headers)["decision"])

        subjects: dict[str, Callable[[int], object]] = {
            "original": lambda i: originals["original"].evaluate(orders[i]),
            "original_fastapi": lambda i: originals["original_fastapi"].evaluate(orders[i]),
            "http": over_http,
            # The same orders over the same process's order socket (a persistent Unix socket connection).
            "socket": lambda i: lines.ask(bodies[i])["decision"],
            # The same listener's cheapest answer (the liveness probe, answered in front of FastAPI).
            "floor": lambda i: api.get("/healthz")["status"],
            # HTTP/1.1 pipelining: PIPELINE_DEPTH orders per write on one connection (a sample is the
            # batch's time over its orders: the time per order, not one order's latency).
            "pipelined": lambda i: "/".join(
                sorted({a["decision"] for a in pipelined.post_many("/v1/evaluate", bodies[i : i + PIPELINE_DEPTH])})
            ),
        }
        per_call = {"pipelined": PIPELINE_DEPTH}
        deciders = [f for name, f in subjects.items() if name != "floor"]
        assert {str(getattr(f(0), "decision", f(0))) for f in deciders} == {"allow"}
        assert subjects["floor"](0) == "alive"
        for i in range(300):  # warm every side
            for call in subjects.values():
                call(i % 1000)
        samples: dict[str, list[int]] = {name: [] for name in subjects}
        perf = time.perf_counter_ns
        for _ in range(10):
            for name, call in subjects.items():
                orders_each = per_call.get(name, 1)
                for i in range(n // 10 // orders_each):
                    t0 = perf()
                    call(i * orders_each % 1000)
                    samples[name].append((perf() - t0) // orders_each)
    out = {f"{name}_{q}": pct(s, v) for name, s in samples.items() for q, v in (("p50", 0.5), ("p99", 0.99))}
    out["ratio_p50"] = out["original_p50"] / out["http_p50"]
    out["ratio_fastapi_p50"] = out["original_fastapi_p50"] / out["http_p50"]
    out["ratio_floor_p50"] = out["http_p50"] / out["floor_p50"]
    out["socket_fastapi_p50"] = out["original_fastapi_p50"] / out["socket_p50"]
    out["socket_floor_p50"] = out["socket_p50"] / out["floor_p50"]
    out["pipelined_fastapi_p50"] = out["original_fastapi_p50"] / out["pipelined_p50"]
    return out


def metrics_on_vs_off(n: int = 20_000, rounds: int = 10) -> dict[str, float]:
    """evaluate p50 with the gate counting for /metrics and without, interleaved, one core."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    try:
        on_cfg = bench_config(100)

        def fresh() -> StateConfig:  # each its own new journal (one per folder; the shared one holds earlier runs)
            return StateConfig(dir=Path(tempfile.mkdtemp(prefix="riskgate-bench-")))

        subjects = {
            "on": fed_supervisor(replace(on_cfg, state=fresh())),
            "off": fed_supervisor(replace(on_cfg, metrics=MetricsConfig(enabled=False), state=fresh())),
        }
        orders = [order(i) for i in range(1000)]
        samples: dict[str, list[int]] = {"on": [], "off": []}
        perf = time.perf_counter_ns
        for _ in range(rounds):
            for name, sup in subjects.items():
                evaluate = sup.evaluate
                for i in range(n // rounds):
                    t0 = perf()
                    evaluate(orders[i % 1000])
                    samples[name].append(perf() - t0)
        for sup in subjects.values():
            sup.stop()
    finally:
        os.sched_setaffinity(0, set(cpus))
    return {"on_p50": pct(samples["on"], 0.5), "off_p50": pct(samples["off"], 0.5)}


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
        sys.exit(0)
    if "--serve-risk-v3" in sys.argv:
        serve_risk_v3()
        sys.exit(0)
    from bench.common import quiet

    quiet()
    r = http_vs_original()
    print(f"POST /v1/evaluate (riskgate API):            p50 {r['http_p50']:.0f} µs  p99 {r['http_p99']:.0f} µs")
    print(f"the same order on the order socket:          p50 {r['socket_p50']:.0f} µs  p99 {r['socket_p99']:.0f} µs")
    print(f"POST /v1/evaluate pipelined, {PIPELINE_DEPTH} per write:  p50 {r['pipelined_p50']:.0f} µs per order")
    print(f"GET /healthz (the HTTP listener's floor):     p50 {r['floor_p50']:.0f} µs")
    print(
        f"per-order GET /risk/global, stdlib simulator: p50 {r['original_p50']:.0f} µs  p99 {r['original_p99']:.0f} µs"
    )
    print(
        f"per-order GET /risk/global, FastAPI Risk v3:  p50 {r['original_fastapi_p50']:.0f} µs"
        f"  p99 {r['original_fastapi_p99']:.0f} µs"
    )
    print(f"the API is {r['ratio_p50']:.2f}x / {r['ratio_fastapi_p50']:.2f}x faster at p50 (target >= 2x)")
    m = metrics_on_vs_off()
    ratio = m["on_p50"] / m["off_p50"]
    print(f"evaluate p50, metrics on vs off: {m['on_p50']:.1f} vs {m['off_p50']:.1f} µs = {ratio:.3f}x")
