"""Baselines, peaks, loss-limit trips (cooldowns) and last equities shared by several
instances on a real PostgreSQL: which row wins whatever the order, a write that commits
late is still read, an instance started mid-day counts the day's loss from the desk's
baseline, a cooldown tripped on one holds on the other, an operator's baseline reaches
every instance, and a store that fails leaves a first-equity baseline unknown."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from supervisor.clock import FakeClock, SystemClock
from supervisor.core.messages import AccountSnapshot
from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from supervisor.shared.baselines import SharedBaselines, operator_set_shared, read_shared
from supervisor.shared.db import SchemaError, SharedStoreError, connect
from supervisor.shared.store import SharedStore
from supervisor.sources.baseline_store import Baseline
from tests.helpers import make_config, order, signal

MONDAY = datetime(2026, 1, 12, tzinfo=UTC)  # a Monday: day and week begin at 00:00 UTC
T = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
SINCE = MONDAY - timedelta(days=8)


def share(dsn: str, name: str) -> SharedBaselines:
    return SharedBaselines(SharedStore(dsn, name, f"run-{name}", 2.0, 30.0))


def day(equity: float | None, source: str, start: datetime = MONDAY) -> Baseline:
    return Baseline(start, equity, source)


def held(s: SharedBaselines, *rows: tuple[str, str, Baseline], at: datetime = T) -> dict[tuple[str, str], Baseline]:
    return {(a, p): b for a, p, b in s.merge(list(rows), at)}


def test_the_row_that_wins_is_the_same_whatever_the_order(migrated_dsn):
    a, b = share(migrated_dsn, "a"), share(migrated_dsn, "b")
    # a first equity (taken mid-period) loses to one taken before the period, whoever came first
    assert held(a, ("x", "day", day(9_000.0, "first_equity")))[("x", "day")].source == "first_equity"
    assert held(b, ("x", "day", day(10_000.0, "last_equity")))[("x", "day")] == day(10_000.0, "last_equity")
    assert held(a, ("x", "day", day(8_000.0, "first_equity")))[("x", "day")] == day(10_000.0, "last_equity")
    # two alike: the higher (losses counted from it); unknown never replaces known
    assert held(a, ("x", "day", day(9_990.0, "last_equity")))[("x", "day")].equity == 10_000.0
    assert held(a, ("x", "day", day(10_010.0, "last_equity")))[("x", "day")].equity == 10_010.0
    assert held(a, ("x", "day", day(None, "store_lost")))[("x", "day")].equity == 10_010.0
    # an operator's word holds over every automatic one; a later operator's over an earlier one
    assert held(b, ("x", "day", day(9_500.0, "operator:cro")))[("x", "day")].equity == 9_500.0
    assert held(a, ("x", "day", day(20_000.0, "last_equity")))[("x", "day")].equity == 9_500.0
    earlier = held(a, ("x", "day", day(9_600.0, "operator:bob")), at=T - timedelta(minutes=1))
    assert earlier[("x", "day")] == day(9_500.0, "operator:cro")
    assert (
        held(a, ("x", "day", day(9_700.0, "operator:bob")), at=T + timedelta(minutes=1))[("x", "day")].equity == 9_700.0
    )
    # the week's peak: the higher; a trip: the earlier
    assert held(a, ("x", "peak", day(11_000.0, "equity_peak")))[("x", "peak")].equity == 11_000.0
    assert held(b, ("x", "peak", day(10_500.0, "equity_peak")))[("x", "peak")].equity == 11_000.0
    trip = T.timestamp()
    assert held(a, ("x", "day_trip", day(trip, "tripped")))[("x", "day_trip")].equity == trip
    assert held(b, ("x", "day_trip", day(trip + 60, "tripped")))[("x", "day_trip")].equity == trip
    # a value that is not a number is never offered; the schema refuses one written by hand
    assert a.merge([("x", "peak", day(math.nan, "equity_peak")), ("x", "peak", day(math.inf, "x"))], T) == []
    conn = connect(migrated_dsn, 2.0, "test")
    try:
        with pytest.raises(Exception, match="check"):
            conn.execute("INSERT INTO baselines VALUES ('x', 'peak', now(), 'Infinity'::float8, 'hand', 'h', now())")
    finally:
        conn.close()
    a.close()
    b.close()


def test_a_write_that_commits_after_a_read_is_read_the_next_time(migrated_dsn):
    reader = share(migrated_dsn, "reader")
    writer = share(migrated_dsn, "w")
    writer.merge([("x", "day", day(10_000.0, "last_equity"))], T)
    assert [(a, p, b.equity) for a, p, b in reader.changes(SINCE)] == [("x", "day", 10_000.0)]  # first: the latest
    slow = connect(migrated_dsn, 2.0, "slow")
    try:
        slow.autocommit = False
        row = {"account": "y", "period": "day", "period_start": MONDAY.isoformat(), "equity": 5000.0,
               "source": "last_equity", "set_at": T.isoformat()}  # fmt: skip
        slow.execute("SELECT riskgate_baselines_merge('slow', %s::jsonb)", (json.dumps([row]),))
        writer.merge([("z", "day", day(7_000.0, "last_equity"))], T)  # a later writer commits first
        assert [a for a, _p, _b in reader.changes(SINCE)] == ["z"]  # y's writer has not committed yet
        slow.commit()
    finally:
        slow.close()
    seen = [a for a, _p, _b in reader.changes(SINCE)]
    assert "y" in seen  # not skipped for its transaction having begun before z's
    reader.close()
    writer.close()


def test_last_equities_keep_the_latest_seen_by_any_instance(migrated_dsn):
    a, b = share(migrated_dsn, "a"), share(migrated_dsn, "b")
    a.save_last_equities({"x": (10_000.0, T)})
    b.save_last_equities({"x": (9_000.0, T - timedelta(seconds=5))})  # older: not kept
    assert a.last_equities()["x"] == (10_000.0, T)
    b.save_last_equities({"x": (9_500.0, T + timedelta(seconds=5))})
    assert b.last_equities()["x"][0] == 9_500.0
    a.close()
    b.close()


def test_an_unmigrated_database_is_named_for_an_operator(pg_dsn):
    store = SharedStore(pg_dsn, "cli", "cli", 2.0, 30.0)
    with pytest.raises(SchemaError, match="riskgate db migrate"):
        operator_set_shared(store, "main", {"day": 1.0}, {"day": MONDAY}, "cro", T)


# -- two instances -------------------------------------------------------------------------------
def config(dsn: str, name: str, tmp_path):
    fields = ("max_daily_loss_pct", "max_weekly_loss_pct", "max_single_trade_risk_pct", "max_open_positions",
              "allowed_leverage")  # fmt: skip
    profiles = {n: {f: getattr(p, f) for f in fields} for n, p in make_config().profiles.items()}
    profiles["normal"]["cooldown_minutes"] = 60.0
    return make_config(
        store={"backend": "postgresql", "dsn": dsn},
        instance={"name": name},
        state={"dir": str(tmp_path / name)},
        profiles=profiles,
    )


def fresh(sup: RiskSupervisor, equity: float) -> None:
    """Every source fresh, the shared state confirmed, a snapshot of `equity`."""
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    if sup.shared is not None:
        assert sup.shared.keeper.round()
    sup.report_account_snapshot(AccountSnapshot("main", equity))


def tick(sup: RiskSupervisor, clock: FakeClock) -> None:
    """The tracker's poll (accounts.poll_interval_s), waited for."""
    clock.advance(sup.config.accounts.poll_interval_s)
    sup.actor_ref("account_tracker").proxy().ping().get(timeout=10)


def test_an_instance_started_mid_day_counts_the_loss_from_the_desks_baseline(migrated_dsn, tmp_path):
    clock = FakeClock(start=MONDAY - timedelta(minutes=10))  # Sunday 23:50
    with RiskSupervisor(config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False) as a:
        fresh(a, 10_000.0)
        clock.set(T)  # Monday 09:00: a takes the day's baseline from the last equity before it
        fresh(a, 9_900.0)
        assert a.evaluate(order(order_id="a1", quantity=0.5)).decision == "allow"
        with RiskSupervisor(config(migrated_dsn, "b", tmp_path), clock=clock, poll_upstreams=False) as b:
            fresh(b, 9_790.0)  # b never saw the account before: alone it would start the day here
            r = b.evaluate(order(order_id="b1", quantity=0.5))
            assert r.reason_code is RC.DAILY_LOSS_LIMIT, r.reason  # -2.1 % of the desk's 10,000


def test_a_cooldown_tripped_on_one_instance_holds_on_another_started_later(migrated_dsn, tmp_path):
    clock = FakeClock(start=T)
    with RiskSupervisor(config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False) as a:
        fresh(a, 10_000.0)
        fresh(a, 9_790.0)  # -2.1 %: the day's limit trips; the cooldown runs 60 min
        assert a.evaluate(order(order_id="a1", quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT
        clock.advance(600)
        fresh(a, 9_900.0)  # back above the limit: the cooldown still holds
        assert a.evaluate(order(order_id="a2", quantity=0.5)).reason_code is RC.LOSS_COOLDOWN
    with RiskSupervisor(config(migrated_dsn, "b", tmp_path), clock=clock, poll_upstreams=False) as b:
        fresh(b, 9_900.0)  # b never saw the loss
        assert b.evaluate(order(order_id="b1", quantity=0.5)).reason_code is RC.LOSS_COOLDOWN
        clock.advance(3000)  # 60 min after the trip a saw
        fresh(b, 9_900.0)
        assert b.evaluate(order(order_id="b2", quantity=0.5)).decision == "allow"


def test_an_operators_baseline_reaches_every_instance_on_its_next_poll(migrated_dsn, tmp_path):
    clock = FakeClock(start=T)
    ca, cb = config(migrated_dsn, "a", tmp_path), config(migrated_dsn, "b", tmp_path)
    with (
        RiskSupervisor(ca, clock=clock, poll_upstreams=False) as a,
        RiskSupervisor(cb, clock=clock, poll_upstreams=False) as b,
    ):
        for sup in (a, b):
            fresh(sup, 9_800.0)
            assert sup.evaluate(order(order_id=f"{sup.config.instance.name}0", quantity=0.5)).decision == "allow"
        store = SharedStore(migrated_dsn, "cli", "cli", 2.0, 30.0)
        operator_set_shared(store, "main", {"day": 10_000.0, "week": 10_000.0}, {"day": MONDAY, "week": MONDAY},
                            "cro", clock.now())  # fmt: skip
        for sup in (a, b):
            tick(sup, clock)
            fresh(sup, 9_795.0)
            r = sup.evaluate(order(order_id=f"{sup.config.instance.name}1", quantity=0.5))
            assert r.reason_code is RC.DAILY_LOSS_LIMIT  # -2.05 % from the operator's 10,000
        shown = read_shared(SharedStore(migrated_dsn, "cli", "cli", 2.0, 30.0), clock.now())
        assert shown[("main", "day")] == Baseline(MONDAY, 10_000.0, "operator:cro")


class _Down:
    """A shared store that cannot be reached (a fault injected under the tracker, the subject)."""

    def merge(self, rows, at):
        raise SharedStoreError("shared store (baselines): connection refused")

    def changes(self, since):
        raise SharedStoreError("shared store (baselines): connection refused")

    def last_equities(self):
        raise SharedStoreError("down")

    def save_last_equities(self, items):
        raise SharedStoreError("down")

    def close(self):
        pass


def test_a_first_equity_the_store_has_not_confirmed_is_unknown(tmp_path):
    cfg = make_config(state={"dir": str(tmp_path / "s")})
    clock = FakeClock(start=T)
    sup = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
    sup._runtime.baseline_share = _Down  # as SharedParts wires it, with the store down
    with sup:
        fresh(sup, 10_000.0)
        r = sup.evaluate(order(order_id="o1", quantity=0.5))
        assert r.reason_code is RC.BASELINE_UNKNOWN  # another instance may hold the real one


def test_baseline_set_and_show_go_through_the_shared_store(migrated_dsn, tmp_path, capsys):
    from supervisor.cli import main
    from tests.supervisor.shared.test_processes import config_text

    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "config.toml"
    path.write_text(config_text("http://127.0.0.1:1", migrated_dsn, "a", tmp_path / "a"))
    argv = ["--day-start-equity", "10000", "--week-start-equity", "11000", "--config", str(path)]
    assert main(["baseline", "set", "main", *argv, "--by", "cro"]) == 0
    assert not (tmp_path / "a" / "state" / "accounts.sqlite").exists()  # not this folder's: the desk's
    assert main(["baseline", "show", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "10,000.00  operator:cro" in shown and "11,000.00  operator:cro" in shown
    held = read_shared(SharedStore(migrated_dsn, "t", "t", 2.0, 30.0), SystemClock().now())
    assert held[("main", "day")].equity == 10_000.0 and held[("main", "week")].equity == 11_000.0


class _Flaky(_Down):
    """A shared store that fails until `up` is set, then answers as an empty store would."""

    up = False

    def merge(self, rows, at):
        if not self.up:
            raise SharedStoreError("shared store (baselines): connection refused")
        return list(rows)

    def changes(self, since):
        if not self.up:
            raise SharedStoreError("shared store (baselines): connection refused")
        return []

    def last_equities(self):
        return {}

    def save_last_equities(self, items):
        if not self.up:
            raise SharedStoreError("down")


def test_baselines_unconfirmed_past_max_age_are_unknown_and_known_again_once_confirmed(tmp_path):
    cfg = make_config(state={"dir": str(tmp_path / "s")}, store={"max_age_s": 3.0})
    clock = FakeClock(start=T)
    store = _Flaky()
    sup = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
    sup._runtime.baseline_share = lambda: store
    store.up = True
    with sup:
        fresh(sup, 10_000.0)
        assert sup.evaluate(order(order_id="o1", quantity=0.5)).decision == "allow"
        store.up = False
        tick(sup, clock)  # the sync fails: unconfirmed from now
        clock.advance(4.0)  # past store.max_age_s
        fresh(sup, 10_000.0)
        assert sup.evaluate(order(order_id="o2", quantity=0.5)).reason_code is RC.BASELINE_UNKNOWN
        store.up = True
        tick(sup, clock)  # confirmed again: the account is sent again at once, no snapshot needed
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        assert sup.evaluate(order(order_id="o3", quantity=0.5)).decision == "allow"
