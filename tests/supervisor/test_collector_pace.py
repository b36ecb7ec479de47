"""gate.gc_young_threshold: the cyclic collector's pace, set for the process when riskgate starts
and when a reload changes it; 0 gives the process its own setting back (or leaves it alone), and a
process whose automatic collection is off keeps it off."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from supervisor import RiskSupervisor, heap
from supervisor.config import load_config

SHIPPED = (Path(__file__).resolve().parents[2] / "config.toml").read_text()
LINE = "gc_young_threshold = 20000 "


@pytest.fixture
def process_threshold(monkeypatch):
    before = gc.get_threshold()
    monkeypatch.setattr(heap, "_own_young", None)  # as in a process riskgate has not paced yet
    gc.set_threshold(700, 11, 12)
    yield
    gc.set_threshold(*before)


def config_file(tmp_path: Path, young: int) -> Path:
    assert LINE in SHIPPED
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED.replace(LINE, f"gc_young_threshold = {young} ", 1))
    return path


def test_start_and_reload_pace_the_collector_and_zero_gives_the_process_its_own(clock, tmp_path, process_threshold):
    path = config_file(tmp_path, 0)
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False) as sup:
        assert gc.get_threshold() == (700, 11, 12)  # 0: the process's own, untouched
        config_file(tmp_path, 5000)
        assert sup.reload(path)["changed"] == ["gate.gc_young_threshold"]
        assert gc.get_threshold() == (5000, 11, 12)  # the young generation only
        config_file(tmp_path, 0)
        assert sup.reload(path)["changed"] == ["gate.gc_young_threshold"]
        assert gc.get_threshold() == (700, 11, 12)  # back to the process's own
        config_file(tmp_path, 5000)
        sup.reload(path)
    assert gc.get_threshold() == (5000, 11, 12)  # process-wide: it stays after riskgate stops
    with RiskSupervisor(load_config(config_file(tmp_path, 20000)), clock=clock, poll_upstreams=False):
        assert gc.get_threshold() == (20000, 11, 12)  # the shipped default


def test_a_process_that_turned_automatic_collection_off_keeps_it_off(clock, tmp_path, process_threshold):
    gc.set_threshold(0, 11, 12)  # the host's choice: no automatic collection at all
    with RiskSupervisor(load_config(config_file(tmp_path, 20000)), clock=clock, poll_upstreams=False):
        assert gc.get_threshold() == (0, 11, 12)
