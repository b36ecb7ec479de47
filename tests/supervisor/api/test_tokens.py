"""`riskgate token add` writes a token's hash into the config and prints the token once; a running
riskgate takes it up on reload; a valid token of the wrong role is a 403, an unknown one a 401."""

from __future__ import annotations

import pytest

from supervisor import RiskSupervisor, load_config
from supervisor.cli import main
from tests.supervisor.api.conftest import ALICE, DESK
from tests.supervisor.api.test_controls import call


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "c.toml"
    assert main(["init-config", str(path)]) == 0  # the shipped example
    path.chmod(0o600)
    return path


def test_a_token_is_printed_once_and_only_its_hash_is_kept(config_file, capsys):
    assert main(["token", "add", "carol", "--operator", "--config", str(config_file)]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert len(token) >= 40 and "shown this once" in err
    text = config_file.read_text()
    assert token not in text and "[api.operators.carol]" in text
    assert (config_file.stat().st_mode & 0o777) == 0o600  # its mode kept
    cfg = load_config(config_file)
    assert "carol" in cfg.api.operators
    assert main(["token", "add", "desk2", "--client", "--accounts", "alt_bybit", "--config", str(config_file)]) == 0
    assert sorted(load_config(config_file).api.clients["desk2"].accounts or ()) == ["alt_bybit"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["carol", "--operator", "--accounts", "main_binance"], "--accounts limits a client"),
        (["desk", "--client", "--accounts", "ghost"], "not a configured account"),
        (["bad name", "--operator"], "letters, digits"),
        (["x"], "one of the arguments --operator --client is required"),
    ],
)
def test_bad_input_is_refused_naming_it_and_changes_nothing(config_file, capsys, argv, says):
    before = config_file.read_text()
    try:
        code = main(["token", "add", *argv, "--config", str(config_file)])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code == 2 and says in capsys.readouterr().err
    assert config_file.read_text() == before


def test_a_name_taken_or_a_file_the_table_would_break_changes_nothing(config_file, capsys):
    assert main(["token", "add", "carol", "--operator", "--config", str(config_file)]) == 0
    before = config_file.read_text()
    assert main(["token", "add", "CAROL", "--client", "--config", str(config_file)]) == 2
    assert "already has a token" in capsys.readouterr().err
    clash = config_file.with_name("inline.toml")
    clash.write_text(before.split("\n[api.operators.carol]")[0].replace("[metrics]", "operators = {}\n[metrics]", 1))
    kept = clash.read_text()
    assert main(["token", "add", "dave", "--operator", "--config", str(clash)]) == 2
    assert "nothing changed" in capsys.readouterr().err and clash.read_text() == kept


def test_a_running_riskgate_takes_a_new_token_up_on_reload_and_a_wrong_role_is_403(tmp_path, capsys, clock):
    from tests.helpers import make_config
    from tests.supervisor.api.conftest import clients, operators

    cfg = make_config(api={"operators": operators(), "clients": clients()}, state={"dir": str(tmp_path / "state")})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        assert call(sup, "POST", "/v1/halt", DESK, {"reason": "a client tries"}).status_code == 403
        r = call(sup, "POST", "/v1/halt", DESK, {"reason": "a client tries"})
        assert "desk" in r.json()["detail"] and "operator" in r.json()["detail"]
        assert call(sup, "POST", "/v1/halt", "not-a-token-at-all-0123", {"reason": "x"}).status_code == 401
        assert call(sup, "POST", "/v1/halt", ALICE, {"reason": "ok"}).status_code == 200


def test_a_token_added_while_running_works_after_the_reload(config_file, capsys, clock):
    cfg = load_config(config_file)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        capsys.readouterr()
        assert main(["token", "add", "erin", "--operator", "--config", str(config_file)]) == 0
        token = capsys.readouterr().out.strip().splitlines()[-1]  # (stdout also holds this process's log)
        assert call(sup, "POST", "/v1/halt", token, {"reason": "before the reload"}).status_code == 401
        sup.reload(config_file, by="SIGHUP")  # what SIGHUP does
        r = call(sup, "POST", "/v1/halt", token, {"reason": "after the reload"})
        assert r.status_code == 200 and r.json()["by"] == "erin"
