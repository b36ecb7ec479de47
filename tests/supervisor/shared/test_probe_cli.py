"""Probe: the shared-store CLI against hostile database contents and servers."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tests.supervisor.shared.test_processes import config_text

COLS = None


def _cfg(tmp_path, dsn):
    folder = tmp_path / "a"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(config_text("http://127.0.0.1:1", dsn, "a", folder))
    return path


def _cli(*argv, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def _hostile_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a row of NULLs but its keys, one far in the future, one with odd text
        conn.execute("INSERT INTO decisions (instance, run, seq) VALUES ('evil', 'r', 1)")
        conn.execute(
            "INSERT INTO decisions (instance, run, seq, ts_us, order_id, decision, reason_code, reason,"
            " signal_ts_us) VALUES ('evil', 'r', 2, 9223372036854775807, 'o2', 'allow', 'NOT_A_CODE',"
            " '\x1b[2Jfake', 9223372036854775807)"
        )
        conn.execute(
            "INSERT INTO decisions (instance, run, seq, ts_us, order_id, decision, reason_code, quantity,"
            " price) VALUES ('evil', 'r', 3, -9223372036854775807, 'o3', 'allow', 'ALL_CHECKS_PASSED',"
            " 'NaN', 'Infinity')"
        )
        conn.execute("INSERT INTO events (instance, run, seq) VALUES ('evil', 'r', 1)")
        conn.execute(
            "INSERT INTO events (instance, run, seq, ts_us, kind, detail)"
            " VALUES ('evil', 'r', 2, 9223372036854775807, 'x', '[[[[')"
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["journal"],
        ["journal", "--json"],
        ["journal", "--csv"],
        ["journal", "stats"],
        ["journal", "explain", "o2"],
        ["journal", "explain", "o3"],
        ["journal", "explain", "o2", "--json"],
    ],
)
def test_journal_reads_hostile_rows_without_traceback(migrated_dsn, tmp_path, argv):
    _hostile_rows(migrated_dsn)
    cfg = _cfg(tmp_path, migrated_dsn)
    done = _cli(*argv, "--config", str(cfg))
    assert "Traceback" not in done.stderr, done.stderr[-1500:]


def test_instances_never_prints_terminal_escapes_from_the_database(migrated_dsn, tmp_path):
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO instances (name, run, host, pid, version, started_at, heartbeat_at)"
            " VALUES ('x', 'r', E'\\x1b[2J\\x1b[Hall clear', 1, 'v', now(), now())"
        )
        conn.execute(
            "UPDATE operator_halt SET active = TRUE, by_name = 'db', reason = E'\\x1b[8mhidden', changed_at = now()"
        )
    cfg = _cfg(tmp_path, migrated_dsn)
    done = _cli("instances", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout, repr(done.stdout)


def test_db_migrate_against_unreachable_server_is_clear(tmp_path):
    cfg = _cfg(tmp_path, "host=127.0.0.1 port=1 user=x dbname=y")
    for argv in (["db", "migrate"], ["instances"], ["journal"]):
        done = _cli(*argv, "--config", str(cfg))
        assert done.returncode == 1 and "Traceback" not in done.stderr, (argv, done.stderr)
