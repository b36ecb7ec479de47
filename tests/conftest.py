from __future__ import annotations

import pykka
import pytest
import structlog

from supervisor.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Relative paths (the default `[state] dir = "state"`) land in the test's own folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _stop_all_actors():
    yield
    pykka.ActorRegistry.stop_all(timeout=5)
    structlog.reset_defaults()  # a test that configured logging leaves none behind
