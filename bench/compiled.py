"""The optional compiled core (mypyc, `RISKGATE_COMPILE=1`) beside the pure one, in one run.

Both cannot live in one process (a compiled module shadows its .py), so this
copies the tree to a temporary folder, compiles the modules setup.py names
there with mypyc, and measures there, in a subprocess whose imports resolve to that copy:
`bench_pure` for an allowed and a blocked order, section 2 (evaluate beside
a bare ask, on different cores and on one) and section 3 with 4 callers. Skipped (with the reason)
when mypyc or a C compiler is missing, or when this tree is itself compiled.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = """
import json, logging, sys
from bench.common import pct
from bench.gate_latency import bench_pure, pinned_regimes
from bench.throughput import throughput
from supervisor.core.evaluate import COMPILED
from supervisor.logs import configure_logging
assert COMPILED, "the copy did not import its compiled modules"
configure_logging("console", level=logging.ERROR, stream=sys.stderr)
bench_pure(2000)
allowed, blocked = bench_pure(N), bench_pure(N, blocked=True)
out = {"allowed_p50": pct(allowed, 0.5), "allowed_p99": pct(allowed, 0.99),
       "blocked_p50": pct(blocked, 0.5), "blocked_p99": pct(blocked, 0.99)}
for name, samples in pinned_regimes(N):
    out[name + "_evaluate_p50"] = pct(samples["RiskSupervisor.evaluate"], 0.5)
    out[name + "_ask_p50"] = pct(samples["bare pykka ask (trivial handler)"], 0.5)
out["throughput_4"], out["backlog_4"] = throughput(4)
print(json.dumps(out))
"""


_REPLAY = """
import json, logging, sys, time
from pathlib import Path
from bench.replay import bench_config
from supervisor.core.evaluate import COMPILED
from supervisor.journal.store import JOURNAL_NAME
from supervisor.logs import configure_logging
from supervisor.replay import replay_journal
assert COMPILED, "the copy did not import its compiled modules"
configure_logging("console", level=logging.ERROR, stream=sys.stderr)
folder = Path(FOLDER)
live = bench_config(folder, exchanges=EXCHANGES)
t0 = time.perf_counter()
report = replay_journal(folder / JOURNAL_NAME, live, workers=WORKERS)
print(json.dumps({"replay_s": time.perf_counter() - t0, "replay_total": report.total,
                  "replay_changed": report.changed}))
"""


def compiled_modules() -> list[str]:
    """The modules setup.py compiles with RISKGATE_COMPILE=1, read from its COMPILED list."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError("setup.py names no COMPILED modules")


def run(n: int = 20_000, replay: tuple[Path, int, int] | None = None) -> dict[str, float] | str:
    """The compiled core's p50/p99 (µs), or why it was not measured. `replay`: (folder, exchanges,
    workers) of a journal bench.replay recorded (and kept): replayed under its live config too."""
    from supervisor.core.evaluate import COMPILED

    if COMPILED:
        return "this tree is compiled already: remove its .so files to compare"
    mypyc = Path(sys.executable).with_name("mypyc")
    if not mypyc.exists() or shutil.which("cc") is None:
        return "mypyc (mypy, the dev extra) or a C compiler is missing"
    with tempfile.TemporaryDirectory(prefix="riskgate-compiled-") as tmp:
        copy = Path(tmp)
        for name in ("supervisor", "actors", "bench"):
            shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        (copy / "tests").mkdir()
        for name in ("__init__.py", "helpers.py"):
            shutil.copy(ROOT / "tests" / name, copy / "tests" / name)
        built = subprocess.run(  # our own mypyc, on our own files
            [str(mypyc), *compiled_modules()], cwd=copy, capture_output=True, text=True, timeout=600, check=False
        )
        if built.returncode != 0:
            return f"mypyc failed: {(built.stderr or built.stdout).strip().splitlines()[-1:]}"
        measured = subprocess.run(  # this Python, our own code
            [sys.executable, "-c", f"N = {n}\n{_MEASURE}"],
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if measured.returncode != 0:
            return f"the compiled run failed: {measured.stderr.strip().splitlines()[-1:]}"
        out: dict[str, float] = json.loads(measured.stdout.strip().splitlines()[-1])
        if replay is not None:
            folder, exchanges, workers = replay
            script = f"FOLDER = {str(folder)!r}\nEXCHANGES = {exchanges}\nWORKERS = {workers}\n{_REPLAY}"
            replayed = subprocess.run(
                [sys.executable, "-c", script], cwd=copy, capture_output=True, text=True, timeout=900, check=False
            )
            if replayed.returncode != 0:
                return f"the compiled replay failed: {replayed.stderr.strip().splitlines()[-1:]}"
            out.update(json.loads(replayed.stdout.strip().splitlines()[-1]))
        return out


if __name__ == "__main__":
    print(run())
