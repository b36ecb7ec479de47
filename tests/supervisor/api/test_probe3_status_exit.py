"""Probe 25: `riskgate status` exit codes (docs/operations.md: 0 trading, 1 reduce-only or
halted, 2 fail-closed or not ready, 3 unreachable; `--json` prints one object on stdout).

- A malformed --url (a typo: `http://[::1`) raises httpx.InvalidURL, which is not an
  httpx.HTTPError: a traceback and exit 1, the code of REDUCE-ONLY / HALTED.
- A config it cannot read for [api] host:port, or a --token-file it cannot read, exits 2, the
  code of FAIL-CLOSED / NOT READY, with nothing on stdout under --json. The gate's state was never
  read: that is UNREACHABLE (3), or at least a code no verdict uses."""

from __future__ import annotations

import json

import pytest

from supervisor.cli import main


def _run(capsys, *argv):
    capsys.readouterr()
    try:
        code = main(["status", "--json", *argv])
    except Exception as exc:  # noqa: BLE001 - a crash is a finding too
        return ("crashed", type(exc).__name__), capsys.readouterr().out
    return code, capsys.readouterr().out


@pytest.mark.parametrize("url", ["http://[::1"])
def test_a_malformed_url_is_unreachable_not_halted(capsys, monkeypatch, url):
    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    code, out = _run(capsys, "--url", url)
    assert code == 3, f"status --url {url!r} exited {code}: 1 means REDUCE-ONLY/HALTED to a script"
    assert json.loads(out)["verdict"] == "UNREACHABLE"


def test_an_unreadable_config_is_not_reported_with_the_fail_closed_exit_code(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    code, out = _run(capsys, "--config", str(tmp_path / "missing.toml"))
    assert code == 3, "exit 2 is FAIL-CLOSED / NOT READY: the gate's state was never read"
    assert json.loads(out)["verdict"] == "UNREACHABLE"


def test_an_unreadable_token_file_is_not_reported_with_the_fail_closed_exit_code(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    code, out = _run(capsys, "--url", "http://127.0.0.1:9", "--token-file", str(tmp_path / "nope"))
    assert code == 3, "exit 2 is FAIL-CLOSED / NOT READY: the gate's state was never read"
    assert json.loads(out)["verdict"] == "UNREACHABLE"
