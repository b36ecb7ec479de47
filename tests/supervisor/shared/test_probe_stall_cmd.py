"""Probe: a connection that completes its handshake and then never answers (a proxy that
stalls once it sees a given statement): `db migrate` and LISTEN have no client deadline."""

from __future__ import annotations

import threading
import time

import psycopg.conninfo as ci

from tests.supervisor.shared.stall import StallingProxy


def _run_bounded(fn, seconds):
    box = {}

    def go():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    began = time.monotonic()
    t.start()
    t.join(seconds)
    return (not t.is_alive()), time.monotonic() - began, box


def test_db_migrate_is_bounded_when_the_server_stops_answering(pg_dsn, pg_server, tmp_path):
    import argparse

    from supervisor.cli_shared import cmd_db_migrate
    from tests.supervisor.shared.test_processes import config_text

    dbname = ci.conninfo_to_dict(pg_dsn)["dbname"]
    proxy = StallingProxy(("127.0.0.1", pg_server.port), stall_on=b"pg_advisory_xact_lock").start()
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(config_text("http://127.0.0.1:1", pg_server.tcp_dsn(dbname, proxy.port), "m", tmp_path))
        done, took, box = _run_bounded(lambda: cmd_db_migrate(argparse.Namespace(config=str(cfg))), 20.0)
        assert proxy.stalled.is_set()
        assert done, f"`riskgate db migrate` still waiting after {took:.1f} s (timeout_s 0.5)"
        assert box.get("value") == 1, box  # refused, said, exit 1
    finally:
        proxy.close()


def test_listen_is_bounded_when_the_server_stops_answering(migrated_dsn, pg_server):
    from supervisor.shared.listener import ControlListener

    dbname = ci.conninfo_to_dict(migrated_dsn)["dbname"]
    proxy = StallingProxy(("127.0.0.1", pg_server.port), stall_on=b"LISTEN").start()
    try:
        heard = []
        listener = ControlListener(pg_server.tcp_dsn(dbname, proxy.port), "a", 0.5, lambda: heard.append(1))
        listener.start()
        assert proxy.stalled.wait(5)  # the LISTEN reached the proxy, which answers nothing from now on
        thread = listener._thread
        listener.stop()  # joins for timeout_s + 2 s
        assert thread is not None and not thread.is_alive(), "the LISTEN thread hangs on a stalled connection"
    finally:
        proxy.close()
