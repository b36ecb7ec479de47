"""Probe: a store behind a proxy that stalls: halts, resumes, rounds, stop are bounded."""

from __future__ import annotations

import time

import psycopg.conninfo as ci
import pytest

from supervisor.facade import RiskSupervisor
from supervisor.ops.controls import ControlError
from tests.helpers import feed, order
from tests.supervisor.shared.stall import StallingProxy
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_halt_resume_round_stop_bounded_when_store_stalls(migrated_dsn, pg_server, tmp_path, clock):
    dbname = ci.conninfo_to_dict(migrated_dsn)["dbname"]
    with StallingProxy(("127.0.0.1", pg_server.port)) as proxy:
        dsn = pg_server.tcp_dsn(dbname, proxy.port)
        sup = RiskSupervisor(instance_config(dsn, "a", tmp_path, timeout_s=0.5), clock=clock, poll_upstreams=False)
        sup.start()
        feed(sup, equity=RICH)
        assert sup.shared.keeper.round()
        sup.halt("warm", by="x")
        sup.resume(by="x")  # the controls' connection is open
        assert sup.shared.listener.listening.wait(5)
        proxy.stall()
        times = {}
        t = time.monotonic()
        with pytest.raises(ControlError):
            sup.halt("drill", by="alice")
        times["halt"] = time.monotonic() - t
        t = time.monotonic()
        with pytest.raises(ControlError):
            sup.resume(by="bob")
        times["resume"] = time.monotonic() - t
        t = time.monotonic()
        assert not sup.shared.keeper.round()
        times["round"] = time.monotonic() - t
        t = time.monotonic()
        r = sup.evaluate(order(order_id="o", quantity=0.1))
        times["evaluate"] = time.monotonic() - t
        assert r.decision == "block"
        t = time.monotonic()
        sup.stop()
        times["stop"] = time.monotonic() - t
        print(times)
        # Bounded, never hung: store.timeout_s 0.5, a connect cut at 1.5 s, a call or two each.
        assert times["halt"] < 5.0 and times["resume"] < 5.0 and times["round"] < 5.0, times
        assert times["evaluate"] < 0.5 and times["stop"] < 6.0, times
