"""Issue 22, items 6-7: a config file with a number too large to read killed `riskgate run`.

A 400-digit integer raised OverflowError (not ConfigError) at load, so a SIGHUP
reload ended the process and `POST /v1/reload` answered 500; over 4,300 digits
or deeply nested arrays, TOML parsing itself raised. Every malformed file is a
ConfigError naming its path, at start, check-config and reload.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from supervisor import RiskSupervisor
from supervisor.config import ConfigError, load_config
from tests.helpers import config_dict
from tests.supervisor.api.conftest import ALICE, clients, operators

HUGE = "9" * 400


def toml_of(data: dict) -> str:
    """A small TOML writer for the tests' config dicts (tables of scalars and lists)."""
    lines: list[str] = []

    def value(v: object) -> str:
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")

    def table(prefix: str, d: dict) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if scalars or not d:
            if prefix:
                lines.append(f"[{prefix}]")
            lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "riskgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def base_text(**sections) -> str:
    text = toml_of(config_dict(**sections))
    assert tomllib.loads(text)  # the writer writes TOML
    return text


MALFORMED = {
    "400 digits": lambda t: t.replace("max_orders_per_s = 5", f"max_orders_per_s = {HUGE}"),
    "400 digits, float key": lambda t: t.replace("reservation_ttl_s = 30.0", f"reservation_ttl_s = {HUGE}"),
    "400 digits, unbounded": lambda t: t.replace("poll_interval_s = 2.0", f"poll_interval_s = {HUGE}", 1),
    "5000 digits": lambda t: t.replace("max_orders_per_s = 5", f"max_orders_per_s = {'9' * 5000}"),
    "nested arrays": lambda t: t + "[extra]\nx = " + "[" * 5000 + "]" * 5000 + "\n",
    "nested tables": lambda t: t + "y = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n",
    "list of lists": lambda t: t.replace('global_blacklist = ["experimental_hft"]', 'global_blacklist = [[[["x"]]]]'),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_every_malformed_file_is_a_config_error_naming_its_path(tmp_path, name):
    path = write(tmp_path, MALFORMED[name](base_text()))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.source == str(path)
    assert all(len(p) < 400 for p in err.value.problems)  # a 400-digit number is not echoed whole


def test_a_huge_integer_is_named_by_its_key(tmp_path):
    path = write(tmp_path, MALFORMED["400 digits"](base_text()))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(p.startswith("gate.max_orders_per_s:") for p in err.value.problems), err.value.problems


def test_check_config_says_what_is_wrong_without_a_traceback(tmp_path):
    for name in ("400 digits", "5000 digits", "nested arrays"):
        path = write(tmp_path, MALFORMED[name](base_text()))
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
        assert str(path) in done.stderr + done.stdout


def test_a_reload_of_a_malformed_file_changes_nothing_and_says_why(tmp_path, clock):
    path = write(tmp_path, base_text(api={"operators": operators(), "clients": clients()}))
    with RiskSupervisor(load_config(path), clock=clock, poll_upstreams=False) as sup:
        server = sup.serve_api(port=0)
        digest = sup.config.digest
        for name in ("400 digits", "5000 digits", "nested arrays", "nested tables"):
            path.write_text(MALFORMED[name](base_text(api={"operators": operators(), "clients": clients()})))
            with pytest.raises(ConfigError):
                sup.reload()
            import httpx

            r = httpx.post(f"{server.url}/v1/reload", headers={"Authorization": f"Bearer {ALICE}"}, timeout=10)
            assert r.status_code == 400, (name, r.text)
            assert "nothing changed" in r.json()["detail"] and r.json()["problems"]
            assert sup.config.digest == digest


@pytest.mark.parametrize(
    "tail",
    [
        "zz" + ".a" * 20_000 + " = 1\n",
        "[" + ".".join(["a"] * 50_000) + "]\n",
        "y = {" + ".".join(["b"] * 20_000) + " = 1}\n",
    ],
)
def test_a_key_nested_thousands_deep_is_refused_at_once_not_parsed_for_minutes(tmp_path, tail):
    """tomllib is quadratic in a key's depth: 50,000 levels took over a minute (a second probe).
    The problem named is the shape's: refused before any parsing (parsed, it would be an unknown key)."""
    path = write(tmp_path, base_text() + tail)
    with pytest.raises(ConfigError, match="nested that deep"):
        load_config(path)


def test_a_file_over_a_megabyte_is_not_a_configuration(tmp_path):
    path = write(tmp_path, base_text() + "# " + "x" * 1_000_000 + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
