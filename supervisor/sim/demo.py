"""`riskgate demo`: the whole system on one scripted trading day.

The upstream simulator and the supervisor run in one process over real
loopback HTTP; the day's clock is a FakeClock, so a day plays in a second or
two. Every order goes through `RiskSupervisor.evaluate`; the table shows what
the gate decided and why.

`serve=True` (`riskgate demo --serve`) also serves the HTTP API with its
dashboard, plays one row every `pace_s` real seconds so the page can be
watched, and keeps serving after the day until `stop` is set (Ctrl-C). A
one-time operator token is printed for the dashboard's buttons.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from supervisor.clock import FakeClock
from supervisor.config import parse_config
from supervisor.logs import configure_logging
from supervisor.sim.simulator import UpstreamSimulator

__all__ = ["run_demo"]

DAY = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # a Wednesday
EQUITY = 100_000.0
MARKET = {"BTCUSDT": 65_000.0, "ETHUSDT": 3_500.0, "SOLUSDT": 150.0}  # what the prices source answers


def demo_config(sim_url: str, folder: Path, api: dict[str, Any] | None = None) -> Any:
    return parse_config(demo_settings(sim_url, folder, api))


def demo_settings(sim_url: str, folder: Path, api: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo's configuration, as the tables of a TOML file."""
    return {
        **({"api": api} if api is not None else {}),
        "gate": {"evaluate_timeout_s": 2.0, "warning_scale_factor": 0.5, "reservation_ttl_s": 30.0},
        "risk_v3": {"url": sim_url, "poll_interval_s": 2.0, "timeout_s": 0.5, "max_age_s": 10.0},
        "prices": {
            "url": sim_url,
            "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
            "poll_interval_s": 1.0,
            "timeout_s": 0.5,
            "max_age_s": 5.0,
            "spike_pct": 10.0,
            "spike_window_s": 60.0,
            "spike_pause_s": 300.0,
        },
        "ess": {
            "url": sim_url,
            "kill_switch_file": str(folder / "KILL_SWITCH"),
            "poll_interval_s": 0.5,
            "timeout_s": 0.5,
            "max_age_s": 3.0,
        },
        "accounts": {
            "snapshot_url": sim_url,
            "poll_interval_s": 5.0,
            "timeout_s": 0.5,
            "max_age_s": 60.0,
            "desk_binance": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 60_000.0},
        },
        "exchanges": {"binance": {"max_notional_usd": 250_000.0}},
        "profiles": {
            "normal": {
                "max_daily_loss_pct": -2.0,
                "max_weekly_loss_pct": -7.0,
                "max_single_trade_risk_pct": 1.0,
                "max_open_positions": 5,
                "allowed_leverage": 3.0,
                "blacklist": ["martingale"],
            },
        },
        "symbols": {
            "BTCUSDT": {"lot_step": 0.001, "min_qty": 0.001, "min_notional": 5.0},
            "ETHUSDT": {"lot_step": 0.01, "min_qty": 0.01, "min_notional": 5.0},
            "SOLUSDT": {"lot_step": 0.1, "min_qty": 0.1, "min_notional": 5.0},
        },
        "state": {"dir": str(folder / "state")},
        "health": {"interval_s": 3600.0},
    }


def toml_text(tables: dict[str, Any]) -> str:
    """`tables` (nested dicts of strings, numbers, booleans and lists of them) as TOML."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return "[" + ", ".join(value(x) for x in v) + "]"

    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if plain or not name or len(plain) == len(body):  # an empty table is a table too
            lines.extend(([f"[{name}]"] if name else []) + [f"{k} = {value(v)}" for k, v in plain.items()] + [""])
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{k}" if name else k, v)

    table("", tables)
    return "\n".join(lines).lstrip("\n")


def _order(
    symbol: str, side: str, qty: float, price: float, strategy: str = "trend_v2", **extra: Any
) -> dict[str, Any]:
    return {
        "account": "desk_binance",
        "exchange": "binance",
        "strategy_id": strategy,
        "symbol": symbol,
        "side": side,
        "quantity": qty,
        "price": price,
        **extra,
    }


def run_demo(
    out: TextIO | None = None,
    *,
    serve: bool = False,
    port: int = 8010,
    pace_s: float = 2.0,
    stop: threading.Event | None = None,
    keep: Path | None = None,
) -> int:
    """Play the day. `keep`: a folder that keeps the day's journal (`keep/state`) and its
    config (`keep/riskgate.toml`), for `riskgate journal` and `riskgate replay` after."""
    out = out or sys.stdout
    stop = stop or threading.Event()
    configure_logging("console", level=logging.ERROR, stream=sys.stderr)
    from supervisor.facade import RiskSupervisor

    clock = FakeClock(start=DAY)
    counts: Counter[str] = Counter()
    token = secrets.token_urlsafe(18)
    api = None
    if serve:
        digest = hashlib.sha256(token.encode()).hexdigest()
        api = {"enabled": True, "host": "127.0.0.1", "port": port, "operators": {"demo": {"token_sha256": digest}}}
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    kept = contextlib.nullcontext(str(keep)) if keep is not None else None
    with kept or tempfile.TemporaryDirectory(prefix="riskgate-demo-") as tmp, UpstreamSimulator(clock=clock) as sim:
        folder = Path(tmp)
        kill_switch = folder / "KILL_SWITCH"
        sim.set_risk("info")
        sim.set_ess(False)
        btc = {"symbol": "BTCUSDT", "exchange": "binance", "quantity": 0.3, "mark_price": 65_000.0}
        sim.set_account("desk_binance", EQUITY, [btc])
        sim.set_prices(MARKET)
        settings = demo_settings(sim.url, folder.resolve(), api)
        if keep is not None:
            (folder / "riskgate.toml").write_text(toml_text(settings), encoding="utf-8")
        with RiskSupervisor(parse_config(settings), clock=clock, api=serve) as sup:
            if sup.api_server is not None:
                print(f"dashboard: {sup.api_server.url}/  (operator token for its buttons: {token})", file=out)
                print(f"the day plays one row every {pace_s:g} s on a simulated clock; Ctrl-C stops.\n", file=out)
                out.flush()
            print(f"riskgate demo: upstream simulator on {sim.url}; account desk_binance, profile normal,", file=out)
            print(f"equity {EQUITY:,.0f} USD, cap 60,000 USD notional, holding 0.3 BTC (19,500 USD).\n", file=out)
            header = (
                f"{'time':5}  {'what happens':44}  {'order':32}  {'decision':10}  {'reason_code':26}  {'qty sent':>9}"
            )
            print(header, file=out)
            print("-" * len(header), file=out)

            def at(hhmm: str, what: str, order: dict[str, Any], before: Callable[[], object] | None = None) -> None:
                if serve and stop.wait(pace_s):
                    return  # stopped: the rest of the day is skipped
                h, m = map(int, hhmm.split(":"))
                target = DAY.replace(hour=h, minute=m)
                if before is not None:
                    before()
                if target > clock.now():
                    clock.set(target)
                sup.poll_now()  # the polls that time fired, finished before the order
                r = sup.evaluate(order)
                counts[r.decision] += 1
                o = f"{order['side']} {order['quantity']:g} {order['symbol']} @{order['price']:g}"
                print(
                    f"{hhmm:5}  {what:44}  {o:32}  {r.decision:10}  {r.reason_code!s:26}  {r.adjusted_quantity:>9g}",
                    file=out,
                    flush=serve,
                )

            def sol_spikes() -> None:
                clock.set(DAY.replace(hour=10, minute=44, second=30))
                sup.poll_now()  # SOL at 150 half a minute before
                sim.set_prices({"SOLUSDT": 172.5})

            def risk_v3_goes_down() -> None:
                clock.set(DAY.replace(hour=13, minute=59, second=55))
                sup.poll_now()  # its last good answer
                sim.set_fault("risk", "down")

            at(
                "08:00",
                "normal order, all sources healthy",
                _order("BTCUSDT", "buy", 0.05, 65_000.0, stop_price=63_000.0, order_id="desk-0800"),
            )
            at(
                "08:00",
                "the same order sent again (a retry)",
                _order("BTCUSDT", "buy", 0.05, 65_000.0, stop_price=63_000.0, order_id="desk-0800"),
            )
            at("08:05", "fat finger: BTC priced at 10x its mark", _order("BTCUSDT", "buy", 0.01, 650_000.0))
            at(
                "09:15",
                "Risk v3 says WARNING",
                _order("ETHUSDT", "buy", 2.0, 3_500.0, stop_price=3_400.0),
                lambda: sim.set_risk("warning"),
            )
            at(
                "09:45",
                "INFO again; 1.5% of equity at risk",
                _order("SOLUSDT", "buy", 150.0, 150.0, stop_price=140.0),
                lambda: sim.set_risk("info"),
            )
            at(
                "10:30",
                "order past the account's 60k notional cap",
                _order("BTCUSDT", "buy", 0.7, 65_000.0, stop_price=64_000.0),
            )
            at(
                "10:45",
                "SOL jumps 15% within a minute: paused",
                _order("SOLUSDT", "buy", 10.0, 172.5, stop_price=165.0),
                sol_spikes,
            )
            at(
                "10:51",
                "the 5-minute pause is over: SOL trades",
                _order("SOLUSDT", "buy", 10.0, 172.5, stop_price=165.0),
            )
            at(
                "10:55",
                "ETH bought at a stale 3,000: valued at 3,500",
                _order("ETHUSDT", "buy", 15.0, 3_000.0, stop_price=2_950.0),
            )
            at("11:00", "blacklisted strategy", _order("ETHUSDT", "buy", 1.0, 3_500.0, strategy="martingale"))
            at(
                "11:30",
                "ETH bought with 3x leverage (allowed: 3x)",
                _order("ETHUSDT", "buy", 1.0, 3_500.0, stop_price=3_400.0, leverage=3.0),
            )
            at(
                "12:00",
                "Risk v3 says CRITICAL",
                _order("BTCUSDT", "buy", 0.01, 65_000.0),
                lambda: sim.set_risk("critical"),
            )
            at("12:30", "INFO again", _order("BTCUSDT", "buy", 0.01, 65_000.0), lambda: sim.set_risk("info"))
            at(
                "13:00",
                "ops create the kill-switch file",
                _order("BTCUSDT", "buy", 0.01, 65_000.0),
                lambda: kill_switch.write_text("desk halt: exchange incident\n"),
            )
            at("13:10", "kill switch removed", _order("BTCUSDT", "buy", 0.01, 65_000.0), kill_switch.unlink)
            at(
                "14:00",
                "Risk v3 goes down (last answer 5 s old)",
                _order("BTCUSDT", "buy", 0.01, 65_000.0),
                risk_v3_goes_down,
            )
            at("14:01", "still down: the last signal is 65 s old", _order("BTCUSDT", "buy", 0.01, 65_000.0))
            at("14:05", "Risk v3 back", _order("BTCUSDT", "buy", 0.01, 65_000.0), lambda: sim.set_fault("risk", "none"))
            at(
                "14:30",
                "equity down 1.5% today: within the 2% limit",
                _order("ETHUSDT", "buy", 0.5, 3_500.0, stop_price=3_400.0),
                lambda: sim.set_account("desk_binance", EQUITY * 0.985, [btc]),
            )
            at(
                "15:00",
                "equity down 2.5% today",
                _order("ETHUSDT", "buy", 1.0, 3_500.0),
                lambda: sim.set_account("desk_binance", EQUITY * 0.975, [btc]),
            )
            at("15:05", "closing BTC is still allowed", _order("BTCUSDT", "sell", 0.3, 65_000.0))
            if serve and not stop.is_set():
                sup.flush_journal()
                print("\nthe day is over; the dashboard stays up until Ctrl-C.", file=out, flush=True)
                stop.wait()

    print("\ndecisions: " + ", ".join(f"{k} {counts[k]}" for k in ("allow", "scale_down", "block")), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
