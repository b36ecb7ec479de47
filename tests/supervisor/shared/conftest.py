"""A real, throwaway PostgreSQL for the shared store's tests (or RISKGATE_TEST_PG_DSN's).

One server per test process (xdist worker), started from Debian's binaries in a
temp folder (about 1 s); one fresh database per test. A machine without the
binaries skips these tests and says why."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.shared.local_server import LocalServer, LocalServerError, missing_reason

_names = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer | str]:
    """The server, or the DSN of RISKGATE_TEST_PG_DSN (a database the tests may create databases on)."""
    given = os.environ.get("RISKGATE_TEST_PG_DSN")
    if given:
        yield given
        return
    why = missing_reason()
    if why is not None:
        pytest.skip(f"no throwaway PostgreSQL: {why}")
    # Not under pytest's own temp folder: each new pytest session on the machine makes that 0700
    # again, and a server whose files the postgres user cannot reach any more dies.
    folder = Path(tempfile.mkdtemp(prefix="riskgate-test-pg-"))
    server = LocalServer(folder, _free_port(), tcp=True)
    try:
        server.start()
    except LocalServerError as exc:
        pytest.skip(f"no throwaway PostgreSQL: {exc}")
    yield server
    server.stop("immediate")
    shutil.rmtree(folder, ignore_errors=True)


def _admin_dsn(server: LocalServer | str) -> str:
    return server if isinstance(server, str) else server.dsn("postgres")


def _with_db(dsn: str, name: str) -> str:
    import psycopg.conninfo as ci

    params = ci.conninfo_to_dict(dsn)
    params["dbname"] = name
    return ci.make_conninfo(**params)


@pytest.fixture
def pg_dsn(pg_server: LocalServer | str) -> Iterator[str]:
    """A fresh, empty database for this test."""
    import psycopg

    name = f"t{os.getpid()}_{next(_names)}"
    admin = _admin_dsn(pg_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_db(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_dsn(pg_dsn: str) -> str:
    from supervisor.shared.db import connect
    from supervisor.shared.schema import migrate

    conn = connect(pg_dsn, 5.0, "test")
    try:
        migrate(conn)
    finally:
        conn.close()
    return pg_dsn
