"""Fixtures shared by tests/supervisor's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.supervisor.test_shadow import tables, write


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A live config with a shadow config beside it (2x leverage where the live one allows 3x)."""
    candidate = write(tmp_path / "candidate.toml", tables(tmp_path, leverage=2.0))
    live = write(tmp_path / "live.toml", tables(tmp_path, shadow={"config": "candidate.toml", "poll_interval_s": 0.05}))
    return live, candidate
