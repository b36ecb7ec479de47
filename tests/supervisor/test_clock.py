from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supervisor.clock import FakeClock, SystemClock


def test_fake_clock_advance_moves_both_clocks():
    c = FakeClock()
    m, w = c.monotonic(), c.now()
    c.advance(2.5)
    assert c.monotonic() == m + 2.5 and c.now() == w + timedelta(seconds=2.5)
    with pytest.raises(ValueError):
        c.advance(-1)


def test_fake_clock_set_jumps_wall_and_never_moves_monotonic_back():
    c = FakeClock()
    m = c.monotonic()
    c.set(c.now() + timedelta(hours=1))
    assert c.monotonic() == m + 3600
    c.set(c.now() - timedelta(hours=2))
    assert c.monotonic() == m + 3600
    with pytest.raises(ValueError):
        c.set(datetime(2026, 1, 1))


def test_system_clock_is_utc_and_monotonic():
    c = SystemClock()
    assert c.now().tzinfo is UTC
    assert c.monotonic() <= c.monotonic()


def test_no_module_but_clock_reads_the_time():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = [
        str(p.relative_to(root))
        for pkg in ("supervisor", "actors")
        for p in (root / pkg).rglob("*.py")
        if p.name != "clock.py"
        and re.search(r"time\.(time|monotonic|perf_counter)\(|datetime\.(now|utcnow)\(", p.read_text())
    ]
    assert offenders == []


def test_a_timer_tick_that_raises_is_logged_and_the_timer_keeps_going(caplog):
    import logging
    import threading

    from supervisor.clock import SystemClock

    calls = 0
    second = threading.Event()

    def tick() -> None:
        nonlocal calls
        calls += 1
        if calls >= 2:
            second.set()
        raise RuntimeError("a bug in a supervision round")

    with caplog.at_level(logging.ERROR, logger="riskgate.clock"):
        timer = SystemClock().call_every(0.01, tick, "probe")
        try:
            assert second.wait(5), "the timer stopped after a tick raised"
        finally:
            timer.cancel()
    failed = [r for r in caplog.records if r.getMessage().startswith("timer_tick_failed")]
    assert failed and "probe" in failed[0].getMessage() and failed[0].exc_info is not None
