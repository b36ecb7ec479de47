"""Probe: psycopg's DSN parse errors quote pieces of the DSN (the password), and riskgate
passes them on to check-config, db migrate, instances, journal and the run's logs."""

from __future__ import annotations

import dataclasses

import pytest

from supervisor.cli_shared import describe_store
from supervisor.config import ConfigError
from supervisor.config.schema import StoreConfig
from supervisor.shared.db import SharedStoreError, connect
from tests.helpers import make_config


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://riskgate:correct horse@127.0.0.1:1/db", "correct horse"),
        ("host=127.0.0.1 port=1 user=riskgate password=correct horse dbname=db", "horse"),
    ],
)
def test_a_dsn_that_does_not_parse_is_never_echoed(dsn, secret):
    with pytest.raises(ConfigError) as refused:  # refused at load, naming the key, not the DSN
        make_config(store={"backend": "postgresql", "dsn": dsn})
    assert "store.dsn: cannot be read as a libpq connection string" in str(refused.value)
    assert secret not in str(refused.value)
    cfg = dataclasses.replace(make_config(), store=StoreConfig(backend="postgresql", dsn=dsn))  # built in code
    usable, line = describe_store(cfg)
    assert not usable
    assert secret not in line, line
    with pytest.raises(SharedStoreError) as err:
        connect(dsn, 1.0, "x")
    assert secret not in str(err.value), str(err.value)
