from __future__ import annotations

import logging
from pathlib import Path

import pykka
import pytest
import structlog

from supervisor.clock import FakeClock
from tests import helpers

helpers.JOURNAL_WRITER = "thread"  # the suite's supervisors write their journal in a thread (helpers.JOURNAL_WRITER)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Relative paths (the default `[state] dir = "state"`) land in the test's own folder."""
    monkeypatch.chdir(tmp_path)
    yield
    # A test that called monkeypatch.undo() would have sent the rest of itself (a journal
    # reopened by a relative path) into the working tree's ./state.
    assert Path.cwd() == tmp_path, "the test left its folder: use monkeypatch.context(), not undo()"


@pytest.fixture(autouse=True)
def _holdable_gate(monkeypatch):
    """Every supervisor in the tests runs a gate that also takes `GateHold`."""
    from supervisor.runtime.wiring import Runtime
    from tests.helpers import HoldableGateActor

    monkeypatch.setattr(Runtime, "gate_actor_class", HoldableGateActor)


@pytest.fixture(autouse=True)
def _stop_all_actors():
    yield
    pykka.ActorRegistry.stop_all(timeout=5)
    _quiet_structlog()  # a test that configured logging leaves none behind


def _quiet_structlog() -> None:
    """structlog's defaults, minus debug chatter (simulator requests) in the test output."""
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


_quiet_structlog()
