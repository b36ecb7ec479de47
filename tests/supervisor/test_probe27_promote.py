"""Probe 27: `riskgate shadow promote` (System.promote_shadow). What goes live must be what the shadow
showed, the old live config must stay recoverable, and the live file must stay readable as before."""

from __future__ import annotations

import os
import stat

import pytest

from supervisor import RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import load_config
from supervisor.ops.controls import ControlError
from tests.supervisor.test_shadow import fed, one_shadowed, tables, write


def test_promote_puts_live_only_the_candidate_the_shadow_decided_under(files, tmp_path):
    """Found: the candidate file edited after the shadow read it (no reload) is promoted as it is now:
    the live config becomes a config (1x leverage) the shadow never decided under, while /v1/shadow
    showed the 2x candidate's sha256 and disagreements. Expected: refused (409), or the shadowed bytes."""
    live, candidate = files
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        one_shadowed(sup)
        shown = sup.shadow()["candidate_sha256"]
        write(candidate, tables(tmp_path, leverage=1.0))  # edited meanwhile, not reloaded
        with pytest.raises(ControlError, match="changed since the shadow read it") as refused:
            sup.promote_shadow("alice", "the 2x candidate the shadow showed")
        assert refused.value.status == 409 and shown is not None
        assert sup.config.profiles["normal"].allowed_leverage == 3.0  # nothing promoted


def test_two_promotes_in_one_second_keep_the_original_live_config(tmp_path):
    """The backup's name has a one-second stamp and write_atomically replaces what is there. A
    candidate copied from the live file keeps `[shadow] config = "candidate.toml"`, so it can be
    promoted again (a retried CLI call, a double click). Found: the second promote in the same
    second overwrites `live.toml.before-promote-STAMP` with the candidate: the original is lost."""
    shadow = {"config": "candidate.toml", "poll_interval_s": 0.05}
    live = write(tmp_path / "live.toml", tables(tmp_path, shadow=shadow))
    original = live.read_text()
    write(tmp_path / "candidate.toml", tables(tmp_path, leverage=2.0, shadow=shadow))
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        fed(sup)
        sup.promote_shadow("alice", "tighter")
        sup.promote_shadow("bob", "tighter, retried")
    backups = sorted(tmp_path.glob("live.toml.before-promote-*"))
    assert any(b.read_text() == original for b in backups), [b.name for b in backups]


def test_promote_keeps_the_live_config_file_s_permissions(files):
    """write_atomically creates the new file with mkstemp (0600). Found: a 0644 live config becomes
    0600 after a promote: other users (an operator's `riskgate replay --config`, a config check)
    can no longer read it."""
    live, _ = files
    os.chmod(live, 0o644)
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        fed(sup)
        sup.promote_shadow("alice", "tighter")
    assert stat.S_IMODE(os.stat(live).st_mode) == 0o644
