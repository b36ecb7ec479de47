"""What-if replay (supervisor/replay.py, `riskgate replay`): with the live config as the
candidate every recorded decision comes out as recorded (fidelity), on the demo's day and on
a random walk through every input kind and a restart; a stricter candidate changes what it must."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from supervisor import AccountSnapshot, Fill, OrderOutcome, Position, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import load_config, parse_config
from supervisor.core.messages import PriceSnapshot
from supervisor.journal.store import JOURNAL_NAME
from supervisor.ops.controls import ControlError
from supervisor.replay import ReplayError, replay_journal
from tests.helpers import config_dict, signal


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory) -> Path:
    """The demo's day kept (`riskgate demo --keep`), in a process of its own: the demo sets up
    logging for a terminal, which this process's tests must keep as they configured it."""
    folder = tmp_path_factory.mktemp("demo") / "day"
    cli = [sys.executable, "-m", "supervisor.cli", "demo", "--keep", str(folder)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return folder


def strict_toml(folder: Path) -> Path:
    text = (folder / "riskgate.toml").read_text()
    assert "allowed_leverage = 3.0" in text and "max_daily_loss_pct = -2.0" in text
    strict = folder / "strict.toml"
    strict.write_text(text.replace("allowed_leverage = 3.0", "allowed_leverage = 2.0").replace(
        "max_daily_loss_pct = -2.0", "max_daily_loss_pct = -1.0"))  # fmt: skip
    return strict


def test_the_demo_day_replayed_under_its_own_config_changes_nothing(demo_day):
    live = load_config(demo_day / "riskgate.toml")
    report = replay_journal(demo_day / "state" / JOURNAL_NAME, live)
    assert (report.total, report.redecided, report.changed, report.kept) == (21, 21, 0, {})
    assert report.transitions == {}


def test_the_demo_day_under_a_stricter_candidate_blocks_the_leveraged_and_the_late_orders(demo_day):
    report = replay_journal(demo_day / "state" / JOURNAL_NAME, load_config(strict_toml(demo_day)))
    doc = report.as_json()
    assert (doc["total"], doc["changed"]) == (21, 2)
    assert doc["transitions"] == [
        {"from": ["allow", "ALL_CHECKS_PASSED"], "to": ["block", "DAILY_LOSS_LIMIT"], "count": 1,
         "notional_usd": 1750.0},
        {"from": ["allow", "ALL_CHECKS_PASSED"], "to": ["block", "LEVERAGE_EXCEEDS_LIMIT"], "count": 1,
         "notional_usd": 3500.0},
    ]  # fmt: skip
    assert [e["order"] for e in doc["examples"]] == ["buy 1 ETHUSDT @3500", "buy 0.5 ETHUSDT @3500"]
    assert doc["accounts"] == [{"account": "desk_binance", "decisions": 21, "changed": 2, "notional_usd": 5250.0}]


def test_riskgate_replay_prints_json_csv_and_text_and_refuses_what_it_cannot_read(demo_day, tmp_path):
    strict = strict_toml(demo_day)
    cli = [sys.executable, "-m", "supervisor.cli", "replay", "--config", str(demo_day / "riskgate.toml")]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *extra], capture_output=True, text=True, timeout=60, check=False)

    out = run("--candidate", str(strict), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["total"], doc["changed"], len(doc["transitions"])) == (21, 2, 2)
    oid = doc["examples"][0]["order_id"]
    explain = [sys.executable, "-m", "supervisor.cli", "journal", "explain", oid]
    explained = subprocess.run(
        [*explain, "--config", str(demo_day / "riskgate.toml")], capture_output=True, text=True, timeout=60, check=False
    )
    assert explained.returncode == 0 and "leverage: 3" in explained.stdout
    csv_out = run("--candidate", str(strict), "--csv")
    assert csv_out.returncode == 0 and csv_out.stdout.splitlines()[0].startswith("time,order_id,account")
    assert len(csv_out.stdout.splitlines()) == 3
    text = run("--candidate", str(demo_day / "riskgate.toml"))
    assert text.returncode == 0 and "21 decisions" in text.stdout and ": 0 changed" in text.stdout
    gone = run("--candidate", str(strict), "--state-dir", str(tmp_path / "none"))
    assert gone.returncode == 1 and "no journal" in gone.stderr


def test_riskgate_replay_refuses_a_bad_candidate_or_option_naming_it(demo_day, tmp_path, capsys):
    """Refused before anything is read (in this process: no logging set up, no journal opened)."""
    from supervisor.cli import main

    strict, live = strict_toml(demo_day), str(demo_day / "riskgate.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gate]\nmax_orders_per_s = -1\n")
    for extra, said in (
        (["--candidate", str(bad)], "gate.max_orders_per_s"),
        (["--candidate", str(strict), "--json", "--csv"], "choose one"),
        (["--candidate", str(strict), "--account", "nobody"], "'nobody' is not an account of the candidate"),
        (["--candidate", str(strict), "--since", "yesterday"], "--since/--until"),
        (["--candidate", str(tmp_path / "none.toml")], "none.toml"),
    ):
        assert main(["replay", "--config", live, *extra]) == 2
        assert said in capsys.readouterr().err


def test_a_journal_from_before_inputs_were_recorded_or_with_a_damaged_input_is_refused(demo_day, tmp_path):
    live = load_config(demo_day / "riskgate.toml")
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE decisions (run TEXT, seq INTEGER, ts_us INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(ReplayError, match="before riskgate recorded inputs"):
        replay_journal(old, live)
    damaged = tmp_path / "damaged.sqlite"

    def damage(sql: str) -> Path:
        damaged.write_bytes((demo_day / "state" / JOURNAL_NAME).read_bytes())
        db = sqlite3.connect(damaged)
        db.execute(sql)
        db.commit()
        db.close()
        return damaged

    for sql, what in (
        ("UPDATE inputs SET body = '[\"INFO\"' WHERE kind = 'signal'", "input 'signal' cannot be read"),
        ("UPDATE decisions SET ts_us = 'zzz' WHERE rowid = 3", "its time cannot be read"),
        ("UPDATE decisions SET mono_s = 'x' WHERE rowid = 4", "its time cannot be read"),
        ("UPDATE inputs SET received_s = NULL WHERE rowid = 5", "monotonic times cannot be read"),
        ("UPDATE inputs SET ts_us = 2e300 WHERE rowid = 6", "its time cannot be read"),
    ):
        with pytest.raises(ReplayError, match=what):
            replay_journal(damage(sql), live)
    # A damaged order is read as any order from outside: INVALID_ORDER, shown as a change.
    report = replay_journal(
        damage("UPDATE decisions SET quantity = -5 WHERE order_id = (SELECT order_id FROM decisions LIMIT 1)"), live
    )
    assert {tuple(t["to"]) for t in report.as_json()["transitions"]} == {("block", "INVALID_ORDER")}


# -- a random walk through every input the gate takes, with a restart ---------------------


def _walk_config(folder: Path, **gate: object) -> dict:
    return config_dict(
        gate={"duplicate_window_s": 20.0, "max_repeats": 3, "max_orders_per_s": 3, "max_messages_per_s": 6,
              "reservation_ttl_s": 15.0, **gate},
        state={"dir": str(folder)},
        prices={"url": "http://127.0.0.1:1", "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "max_age_s": 8.0,
                "spike_pct": 8.0, "spike_window_s": 30.0, "spike_pause_s": 20.0},
    )  # fmt: skip


MARKS = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 100.0}


def _walk(sup: RiskSupervisor, clock: FakeClock, rng: random.Random, steps: int, book: dict) -> None:
    accounts = list(sup.config.accounts.accounts)
    approved: list[tuple[str, str, str, str, float, float]] = book.setdefault("approved", [])
    for _ in range(steps):
        clock.advance(rng.choice((0.0, 0.05, 0.4, 1.5, 4.0, 12.0)))
        if rng.random() < 0.85:  # the sources keep up, mostly
            sup.report_ess_active(rng.random() < 0.02, "walk")
            sup.report_risk_signal(signal(rng.choice(("INFO",) * 12 + ("WARNING", "CRITICAL")), clock.now()))
        if rng.random() < 0.5:
            for symbol in MARKS:
                MARKS[symbol] *= 1 + rng.gauss(0, 0.02)
            sup.report_prices(PriceSnapshot(clock.now(), dict(MARKS)))
        if rng.random() < 0.2:
            for name in accounts:
                equity = book.setdefault(name, 10_000.0) * (1 + rng.gauss(0, 0.008))
                book[name] = equity
                held = [Position(s, sup.config.accounts.accounts[name].exchange, rng.choice((-1, 1)) * q, MARKS[s])
                        for s, q in (("SOLUSDT", rng.choice((0.0, 2.0, 10.0))), ("ETHUSDT", rng.choice((0.0, 0.5))))
                        if q]  # fmt: skip
                sup.report_account_snapshot(AccountSnapshot(name, equity, tuple(held), clock.now()))
        roll = rng.random()
        if roll < 0.03:
            try:
                if rng.random() < 0.3:
                    sup.halt("walk", by="op", mode=rng.choice(("all", "reduce_only")))
                else:
                    sup.resume(by="op")
            except ControlError:
                pass  # 409: nothing to lift
        elif roll < 0.36 and approved:
            account, oid, symbol, side, qty, price = rng.choice(approved)
            exchange = sup.config.accounts.accounts[account].exchange
            sup.report_fill(Fill(account, exchange, symbol, side, qty * rng.choice((0.5, 1.0)), price, oid))
        elif roll < 0.42 and approved:
            account, oid, *_ = rng.choice(approved)
            status = rng.choice(("open", "filled", "cancelled", "partially_filled", "rejected"))
            sup.report_order_outcome(OrderOutcome(oid, status, 0.0, account))  # type: ignore[arg-type]
        elif roll < 0.45:
            sup.report_message(rng.choice(accounts))
        else:
            symbol = rng.choice(list(MARKS))
            account = rng.choice(accounts)
            side = rng.choice(("buy", "sell"))
            price = round(MARKS[symbol] * rng.choice((1.0, 1.0, 0.99, 1.01, 1.3)), 2)
            qty = {"BTCUSDT": 0.002, "ETHUSDT": 0.05, "SOLUSDT": 1.0}[symbol] * rng.choice((1, 1, 2, 5, 40))
            oid = f"w{rng.randrange(10**6)}" if rng.random() < 0.85 or not approved else rng.choice(approved)[1]
            raw = {"account": account, "exchange": sup.config.accounts.accounts[account].exchange,
                   "strategy_id": rng.choice(("trend_v2",) * 8 + ("martingale",)), "symbol": symbol, "side": side,
                   "quantity": qty, "price": price, "leverage": rng.choice((1.0, 1.0, 2.0, 4.0)), "order_id": oid,
                   "reduce_only": rng.random() < 0.15}  # fmt: skip
            if rng.random() < 0.6:
                raw["stop_price"] = round(price * (0.97 if side == "buy" else 1.03), 2)
            r = sup.evaluate(raw)
            book.setdefault("codes", set()).add(str(r.reason_code))
            if r.decision != "block":
                approved.append((account, oid, symbol, side, r.adjusted_quantity, price))


@pytest.mark.parametrize("seed", [7, 2026])
def test_a_random_walk_with_a_restart_replays_to_the_same_decisions(tmp_path, seed):
    rng = random.Random(seed)
    clock = FakeClock()
    folder = tmp_path / "state"
    cfg = parse_config(_walk_config(folder))
    book: dict = {}
    MARKS.update(BTCUSDT=60_000.0, ETHUSDT=3_000.0, SOLUSDT=100.0)
    for _run in range(2):  # the second run recalls the first's approvals, marks and pauses
        with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
            sup.report_ess_active(False)
            sup.report_risk_signal(signal("INFO", clock.now()))
            _walk(sup, clock, rng, 160, book)
            sup.flush_journal()
        clock.advance(3.0)
    journal = folder / JOURNAL_NAME
    report = replay_journal(journal, cfg)
    assert report.runs == 2
    assert report.changed == 0, report.as_json()["examples"]
    assert report.redecided > 150
    assert len(book["codes"]) >= 10, book["codes"]  # the walk went through many checks, not one
    # The replay can fail: a candidate with other limits decides otherwise.
    stricter = parse_config(_walk_config(folder, max_orders_per_s=1, duplicate_window_s=0.0))
    alone = replay_journal(journal, stricter)
    assert alone.changed > 0
    # In two processes (main and tiny on binance, bold on bybit): the same report, to the order.
    split = replay_journal(journal, stricter, workers=2)
    assert split.as_json() == alone.as_json()
    assert replay_journal(journal, cfg, workers=2).as_json() == report.as_json()


def test_replaying_a_window_still_builds_the_state_from_the_run_s_start(demo_day):
    live = load_config(demo_day / "riskgate.toml")
    journal = demo_day / "state" / JOURNAL_NAME
    full = replay_journal(journal, live)
    late = replay_journal(journal, live, since_us=int((full.first + timedelta(hours=6)).timestamp() * 1e6))
    assert late.changed == 0 and 0 < late.total < full.total
