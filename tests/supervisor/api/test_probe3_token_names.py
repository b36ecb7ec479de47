"""Probe 25: `riskgate token add NAME` accepts NAME of "1-64 letters, digits or _.@-" but writes it
as a bare TOML key (`[api.operators.NAME]`): a "." makes nested tables and an "@" is not TOML at
all, so every name with either is refused ("the new table would make the file invalid") although
the tool itself advertises them. The key should be quoted (`[api.operators."alice.smith"]`).

And a config whose tokens come from `token_env` cannot take a new token from a shell that lacks the
service's environment (systemd's EnvironmentFile): the file is refused as "not a valid
configuration yet" though nothing in it is wrong and the new table does not touch those keys."""

from __future__ import annotations

import pytest

from supervisor import load_config
from supervisor.cli import main


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "c.toml"
    assert main(["init-config", str(path)]) == 0
    return path


@pytest.mark.parametrize("name", ["alice.smith", "bob@desk"])
def test_a_name_the_tool_allows_is_written_so_that_the_config_keeps_it(config_file, capsys, name):
    code = main(["token", "add", name, "--operator", "--config", str(config_file)])
    err = capsys.readouterr().err
    assert code == 0, f"token add {name!r} refused: {err.strip()}"
    assert name in load_config(config_file).api.operators


def test_a_token_env_the_shell_does_not_hold_does_not_block_adding_another_token(config_file, capsys, monkeypatch):
    config_file.write_text(config_file.read_text() + '\n[api.operators.svc]\ntoken_env = "RISKGATE_SVC_TOKEN"\n')
    monkeypatch.setenv("RISKGATE_SVC_TOKEN", "s" * 32)
    assert load_config(config_file)  # valid where the service runs
    monkeypatch.delenv("RISKGATE_SVC_TOKEN")  # an operator's shell
    code = main(["token", "add", "carol", "--operator", "--config", str(config_file)])
    assert code == 0, capsys.readouterr().err
