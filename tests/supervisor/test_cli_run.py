"""`riskgate run` and `riskgate demo` as real subprocesses."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.sim.simulator import UpstreamSimulator

ROOT = Path(__file__).resolve().parents[2]
DESK = "desk-token-for-the-run-test-0123"  # the execution client's token in write_config's file


def write_config(path: Path, sim_url: str) -> None:
    text = (ROOT / "config.toml").read_text()
    text = text.replace('url = "http://127.0.0.1:8001"', f'url = "{sim_url}"')
    text = text.replace("interval_s = 30.0", "interval_s = 0.2")  # [health]
    text = text.replace('kill_switch_file = "state/KILL_SWITCH"', f'kill_switch_file = "{path.parent / "KILL_SWITCH"}"')
    text = text.replace('dir = "state"', f'dir = "{path.parent / "state"}"')
    text = text.replace("port = 8010", "port = 0")  # [api]: a free port, named in the riskgate_running event
    text += f'\n[api.clients.desk]\ntoken_sha256 = "{hashlib.sha256(DESK.encode()).hexdigest()}"\n'
    path.write_text(text)


class LogFollower:
    """Reads a process's JSON log lines on a thread; `wait_for(event)` returns the line once seen."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[dict] = []
        self._seen = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            with self._seen:
                self.lines.append(json.loads(line))
                self._seen.notify_all()

    def wait_for(self, event: str, timeout: float = 30.0, after: int = 0) -> dict:
        def found() -> dict | None:
            return next((e for e in self.lines[after:] if e["event"] == event), None)

        with self._seen:
            assert self._seen.wait_for(lambda: found() is not None, timeout), f"no {event} within {timeout} s"
            return found()  # type: ignore[return-value]


@contextlib.contextmanager
def riskgate_run(cfg: Path) -> Iterator[tuple[subprocess.Popen, LogFollower, str]]:
    """`riskgate run --config cfg` as a subprocess, once it is ready: (process, its log, API URL).
    On leaving, SIGTERM: it must exit 0 within 10 s."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        logs = LogFollower(proc)
        url = logs.wait_for("riskgate_running")["api"]
        assert url.startswith("http://127.0.0.1:")
        logs.wait_for("riskgate_ready")
        yield proc, logs, url
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_run_logs_json_health_and_exits_0_on_sigterm(tmp_path):
    with UpstreamSimulator() as sim:
        sim.set_risk("info")
        cfg = tmp_path / "config.toml"
        write_config(cfg, sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        enough = threading.Event()

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if sum('"actor_health"' in x for x in lines) >= 8:  # two health rounds
                    enough.set()
            enough.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert enough.wait(20), "no health events within 20 s"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            proc.kill()
        reader.join(5)
    events = [json.loads(line) for line in lines]  # every stdout line is JSON
    health = [e for e in events if e["event"] == "actor_health"]
    assert {e["actor"] for e in health} == {"journal", "gate", "account_tracker", "risk_v3_poller", "ess_watcher"}
    for e in health:
        assert {"actor", "alive", "restarts", "last_error", "state_age_s", "level", "timestamp"} <= set(e)
    assert any(e["event"] == "gate_stats" and "decisions" in e for e in events)
    assert any(e["event"] == "journal_health" and e["problem"] is None for e in events)
    # No account snapshots from the simulator: health says so, as not ready (never as healthy).
    readiness = [e for e in events if e["event"] == "readiness"]
    assert readiness and all(e["ready"] is False and e["level"] == "warning" for e in readiness)
    assert "account:main_binance: no state yet" in readiness[-1]["missing"]
    assert events[-1]["event"] == "riskgate_stopped"


def test_run_with_a_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config.toml").read_text().replace("max_orders_per_s = 20", "max_orders_per_s = 0"))
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "run", "--config", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "gate.max_orders_per_s: must be >= 1" in proc.stderr


@pytest.mark.parametrize("entry", [["-m", "supervisor.cli", "demo"]])
def test_demo_exits_0_and_shows_every_decision_kind(entry):
    proc = subprocess.run([sys.executable, *entry], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line[:2].isdigit() and line[2] == ":"]
    decisions = {word for row in rows for word in row if word in ("allow", "block", "scale_down")}
    assert decisions == {"allow", "block", "scale_down"}
    for code in (
        "RISK_WARNING_SCALE",
        "SINGLE_TRADE_RISK",
        "ACCOUNT_EXPOSURE_LIMIT",
        "STRATEGY_NOT_ALLOWED",
        "GLOBAL_RISK_CRITICAL",
        "ESS_HALT_ACTIVE",
        "RISK_STATE_STALE",
        "PRICE_OUT_OF_COLLAR",
        "PRICE_SPIKE_PAUSE",
        "DUPLICATE_ORDER",
    ):
        assert code in proc.stdout
    assert "decisions: allow" in proc.stdout


def test_baseline_set_unblocks_a_lost_store_for_a_running_gate(tmp_path, capsys):
    from supervisor import AccountSnapshot, RiskSupervisor, load_config
    from supervisor.cli import main
    from supervisor.core.reasons import ReasonCode as RC
    from tests.helpers import order, signal

    path = tmp_path / "config.toml"
    write_config(path, "http://127.0.0.1:1")
    cfg = load_config(path)
    wanted = {**order(), "account": "main_binance", "quantity": 0.5}
    with RiskSupervisor(cfg, poll_upstreams=False) as sup:  # the real clock: the command uses it too
        sup.report_account_snapshot(AccountSnapshot("main_binance", 10_000.0))
    (cfg.state.dir / "accounts.sqlite").write_bytes(b"")  # the store is lost
    with RiskSupervisor(cfg, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", sup.clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main_binance", 9_900.0))
        assert sup.evaluate(wanted).reason_code is RC.BASELINE_UNKNOWN
        argv = ["baseline", "set", "main_binance", "--day-start-equity", "10000", "--config", str(path), "--by", "cro"]
        assert main(argv) == 0
        assert "--week-start-equity" in capsys.readouterr().out  # the week is still unknown
        sup.report_account_snapshot(AccountSnapshot("main_binance", 9_900.0))
        assert sup.evaluate(wanted).reason_code is RC.BASELINE_UNKNOWN
        assert main([*argv, "--week-start-equity", "10000"]) == 0
        state = sup.report_account_snapshot(AccountSnapshot("main_binance", 9_900.0))
        assert (state.day_start_equity, state.week_start_equity, state.baseline_unknown) == (10_000.0, 10_000.0, ())
        assert sup.evaluate(wanted).decision == "allow"
    assert main(["baseline", "show", "--config", str(path)]) == 0
    assert "operator:cro" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ghost", "--day-start-equity", "1"], "not configured"),
        (["main_binance", "--day-start-equity", "nan"], "--day-start-equity must be"),
        (["main_binance", "--day-start-equity", "100", "--week-start-equity", "-5"], "--week-start-equity must be"),
    ],
)
def test_baseline_set_refuses_bad_input_naming_it(tmp_path, capsys, argv, says):
    from supervisor.cli import main

    path = tmp_path / "config.toml"
    write_config(path, "http://127.0.0.1:1")
    assert main(["baseline", "set", *argv, "--config", str(path)]) == 2
    assert says in capsys.readouterr().err


def test_version_and_help_on_every_option(capsys):
    from supervisor import __version__
    from supervisor.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"riskgate {__version__}"
    for command in (["run"], ["check-config"], ["simulate-upstream"], ["demo"], ["init-config"], ["baseline", "set"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert "usage: riskgate" in text
        if command == ["demo"]:
            assert "scripted trading day" in text
        if command == ["run"]:
            assert "(default: config.toml)" in text


@pytest.mark.parametrize(
    ("spec", "says"), [("main_binance=abc", "EQUITY must be a number"), ("main_binance", "expected NAME=EQUITY")]
)
def test_simulate_upstream_refuses_a_bad_account_spec_with_a_usage_error(capsys, spec, says):
    from supervisor.cli import main

    with pytest.raises(SystemExit) as done:
        main(["simulate-upstream", "--port", "0", "--account", spec])
    assert done.value.code == 2 and says in capsys.readouterr().err


def test_init_config_writes_the_example_and_keeps_an_existing_file(tmp_path, capsys):
    from supervisor.cli import main

    target = tmp_path / "mine.toml"
    assert main(["init-config", str(target)]) == 0
    assert target.read_text() == (ROOT / "config.toml").read_text()
    target.write_text("# edited\n")
    assert main(["init-config", str(target)]) == 2 and target.read_text() == "# edited\n"
    assert main(["init-config", str(target), "--force"]) == 0 and target.read_text() != "# edited\n"


def test_run_and_check_config_report_problems_in_one_voice(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config.toml").read_text().replace('exchange = "binance"', 'exchange = "binanse"'))
    outputs = [
        subprocess.run(
            [sys.executable, "-m", "supervisor.cli", *args, str(bad)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        for args in (["check-config"], ["run", "--config"])
    ]
    assert [o.returncode for o in outputs] == [2, 2]
    assert outputs[0].stderr == outputs[1].stderr
    assert "accounts.main_binance.exchange: names 'binanse'" in outputs[0].stderr


def test_the_installed_version_is_the_package_version():
    from importlib.metadata import version

    from supervisor import __version__

    assert version("riskgate") == __version__


def test_journal_command_lists_filters_explains_and_counts(tmp_path, capsys):
    import json as _json

    from supervisor import AccountSnapshot, RiskSupervisor
    from supervisor.cli import main
    from tests.helpers import make_config, order, signal

    cfg = make_config(state={"dir": str(tmp_path / "state")})
    with RiskSupervisor(cfg, poll_upstreams=False) as sup:  # the real clock: --since is relative to now
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", sup.clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        sup.evaluate(order(order_id="ok-1"))
        sup.evaluate(order(order_id="no-1", strategy_id="experimental_hft"))
        sup.flush_journal()
        where = ["--state-dir", str(cfg.state.dir)]
        assert main(["journal", *where, "--since", "15m"]) == 0
        table = capsys.readouterr().out
        assert "ok-1" in table and "no-1" in table and "2 decision(s)" in table
        assert main(["journal", *where, "--code", "strategy_not_allowed", "--json"]) == 0
        lines = [_json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [x["order_id"] for x in lines] == ["no-1"] and lines[0]["strategy_id"] == "experimental_hft"
        assert main(["journal", *where, "--decision", "allow", "--csv"]) == 0
        csv_text = capsys.readouterr().out
        assert csv_text.splitlines()[0].startswith("time,ts_us,order_id") and "ok-1" in csv_text
        assert main(["journal", "explain", "no-1", *where]) == 0
        assert "decided by: 8. strategy allowed" in capsys.readouterr().out
        assert main(["journal", "stats", *where, "--since", "1h"]) == 0
        assert "STRATEGY_NOT_ALLOWED" in capsys.readouterr().out
        assert main(["journal", *where, "--since", "yesterday-ish"]) == 2
        assert "neither ISO 8601 nor a span" in capsys.readouterr().err
    assert main(["journal", "--state-dir", str(tmp_path / "nowhere")]) == 1
    assert "no journal at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["journal", "--since", "99999999d"], "--since/--until"),
        (["journal", "--since", ""], "--since/--until"),
        (["journal", "--limit", "99999999999999999999999"], "--limit must be in"),
        (["journal", "--limit", "0"], "--limit must be in"),
        (["journal", "--code", "NOPE"], "unknown reason code 'NOPE'"),
        (["journal", "--json", "--csv"], "choose one"),
        (["simulate-upstream", "--port", "99999"], "--port must be in"),
        (["baseline", "set", "main_binance", "--day-start-equity", "1", "--by", " "], "must not be empty"),
        (["baseline", "show", "nosuch"], "not configured"),
    ],
)
def test_odd_operator_input_gets_a_message_naming_it_never_a_traceback(tmp_path, capsys, argv, says):
    from supervisor.cli import main

    path = tmp_path / "config.toml"
    write_config(path, "http://127.0.0.1:1")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.sqlite").write_bytes(b"")
    wants_config = argv[0] in ("journal", "baseline")
    try:
        code = main([*argv, "--config", str(path)] if wants_config else argv)
    except SystemExit as done:  # argparse's usage errors
        code = done.code
    captured = capsys.readouterr()
    assert code == 2 and says in captured.err and "Traceback" not in captured.err


def test_two_supervisors_on_one_state_folder_are_refused(tmp_path):
    from supervisor import RiskSupervisor
    from supervisor.sources.baseline_store import StoreError
    from tests.helpers import make_config

    cfg = make_config(state={"dir": str(tmp_path / "state")})
    with RiskSupervisor(cfg, poll_upstreams=False), pytest.raises(StoreError, match="in use by another riskgate"):
        RiskSupervisor(cfg, poll_upstreams=False).start()
    with RiskSupervisor(cfg, poll_upstreams=False):  # released at stop
        pass


def test_httpx_request_lines_stay_out_of_the_log():
    import io
    import logging

    from supervisor.logs import configure_logging

    configure_logging("json", stream=io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


def test_run_serves_the_api_reports_ready_and_reloads_on_sighup(tmp_path):
    import httpx

    with UpstreamSimulator() as sim:
        sim.set_risk("info")
        sim.set_account("main_binance", 100_000.0)
        sim.set_account("alt_bybit", 50_000.0)
        cfg = tmp_path / "config.toml"
        write_config(cfg, sim.url)
        with riskgate_run(cfg) as (proc, logs, url):
            assert httpx.get(f"{url}/readyz").status_code == 200
            desk = {"Authorization": f"Bearer {DESK}"}
            order = {
                "account": "main_binance",
                "exchange": "binance",
                "strategy_id": "trend_v2",
                "symbol": "BTCUSDT",
                "side": "buy",
                "quantity": 0.01,
                "price": 65_000.0,
                "leverage": 2.0,
            }
            assert httpx.post(f"{url}/v1/evaluate", json=order, headers=desk).json()["decision"] == "allow"
            cfg.write_text(cfg.read_text().replace("allowed_leverage = 3.0", "allowed_leverage = 1.5"))
            seen = len(logs.lines)
            proc.send_signal(signal.SIGHUP)
            assert logs.wait_for("config_reloaded", after=seen)["changed"] == ["profiles.normal.allowed_leverage"]
            assert (
                httpx.post(f"{url}/v1/evaluate", json=order, headers=desk).json()["reason_code"]
                == "LEVERAGE_EXCEEDS_LIMIT"
            )
            good = cfg.read_text()
            cfg.write_text("broken = [")
            seen = len(logs.lines)
            proc.send_signal(signal.SIGHUP)
            assert "not valid TOML" in logs.wait_for("config_reload_refused", after=seen)["problems"][0]
            # A number too large to read (issue 22, item 6): refused, naming the key; the process lives.
            cfg.write_text(good.replace("max_orders_per_s = 20", "max_orders_per_s = " + "9" * 400, 1))
            seen = len(logs.lines)
            proc.send_signal(signal.SIGHUP)
            problems = logs.wait_for("config_reload_refused", after=seen)["problems"]
            assert problems[0].startswith("gate.max_orders_per_s:"), problems
            assert proc.poll() is None
            assert (
                httpx.post(f"{url}/v1/evaluate", json=order, headers=desk).json()["reason_code"]
                == "LEVERAGE_EXCEEDS_LIMIT"
            )
            assert "risk_gate_decisions_total" in httpx.get(f"{url}/metrics").text


def test_demo_serve_plays_the_day_behind_a_dashboard_and_stops_on_sigint():
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "demo", "--serve", "--port", "0", "--pace", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    over = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "the day is over" in line:
                over.set()
        over.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert over.wait(60), "the day did not end within 60 s"
        first = lines[0]
        assert first.startswith("dashboard: http://127.0.0.1:") and "operator token for its buttons: " in first
        url = first.split()[1].rstrip("/")
        token = first.rsplit(" ", 1)[1].rstrip(")\n")
        import httpx

        assert "<title>riskgate</title>" in httpx.get(url + "/").text
        blocked = httpx.get(url + "/v1/decisions", params={"decision": "block,scale_down"}).json()
        assert {"DAILY_LOSS_LIMIT", "ESS_HALT_ACTIVE", "DUPLICATE_ORDER"} <= {r["reason_code"] for r in blocked}
        halt = httpx.post(url + "/v1/halt", json={"reason": "demo"}, headers={"Authorization": f"Bearer {token}"})
        assert halt.status_code == 200 and halt.json()["active"] is True  # the printed token works
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_output_into_a_pipe_closed_early_ends_quietly():
    """`riskgate journal ... | head`: the reader going away is not an error."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
