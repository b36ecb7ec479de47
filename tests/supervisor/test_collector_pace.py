"""gate.gc_young_threshold: the cyclic collector's pace, set for the process when riskgate starts
and when a reload changes it; 0 leaves the process's own setting alone."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from supervisor import RiskSupervisor
from supervisor.config import load_config

SHIPPED = (Path(__file__).resolve().parents[2] / "config.toml").read_text()
LINE = "gc_young_threshold = 20000 "


@pytest.fixture
def process_threshold():
    before = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    yield
    gc.set_threshold(*before)


def test_start_and_reload_pace_the_collector_and_zero_leaves_it(clock, tmp_path, process_threshold):
    assert LINE in SHIPPED
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED.replace(LINE, "gc_young_threshold = 0 ", 1))
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False) as sup:
        assert gc.get_threshold() == (700, 11, 12)  # 0: the process's own, untouched
        path.write_text(SHIPPED.replace(LINE, "gc_young_threshold = 5000 ", 1))
        assert sup.reload(path)["changed"] == ["gate.gc_young_threshold"]
        assert gc.get_threshold() == (5000, 11, 12)  # the young generation only
    assert gc.get_threshold() == (5000, 11, 12)  # process-wide: it stays after riskgate stops
    path.write_text(SHIPPED)
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False):
        assert gc.get_threshold() == (20000, 11, 12)  # the shipped default
