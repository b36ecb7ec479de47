"""Shared benchmark helpers: percentiles, the machine, an upstream simulator process."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def pct(samples: list[int], q: float) -> float:
    """Percentile `q` of nanosecond samples, in µs."""
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Processor"), as /proc/cpuinfo says."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def machine() -> str:
    cpu = cpu_model()
    from supervisor.core.evaluate import COMPILED

    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.machine()}, "
        f"pykka {importlib.metadata.version('pykka')}, httpx {importlib.metadata.version('httpx')}, "
        f"core {'compiled (mypyc)' if COMPILED else 'pure Python'}"
    )


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


@contextmanager
def simulator_process(*args: str) -> Iterator[str]:
    """`riskgate simulate-upstream` in its own process (no GIL shared with the bench); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "simulate-upstream", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def control(url: str, path: str, body: dict) -> None:
    httpx.post(f"{url}{path}", json=body, timeout=5).raise_for_status()


def quiet() -> None:
    """Errors only, on stderr: a benchmark's stdout is its figures."""
    import logging

    from supervisor.logs import configure_logging

    configure_logging("console", level=logging.ERROR, stream=sys.stderr)
