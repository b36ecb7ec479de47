"""The `riskgate` command."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from supervisor.config import Config, ConfigError, load_config
from supervisor.errors import RiskgateError
from supervisor.version import __version__

__all__ = ["main"]


def _summary(path: str, cfg: Config) -> str:
    accounts = (
        ", ".join(f"{a.name} ({a.exchange}, {a.capital_profile})" for a in cfg.accounts.accounts.values()) or "none"
    )
    ess = [s for s, v in (("http", cfg.ess.url), ("kill_switch_file", cfg.ess.kill_switch_file)) if v]
    return "\n".join(
        [
            f"{path}: OK",
            f"  profiles: {', '.join(cfg.profiles)}",
            f"  accounts: {accounts}",
            f"  symbols: {', '.join(cfg.symbols)}",
            f"  risk_v3: {cfg.risk_v3.url} every {cfg.risk_v3.poll_interval_s}s (stale after {cfg.risk_v3.max_age_s}s)",
            f"  ess sources: {', '.join(ess)} (stale after {cfg.ess.max_age_s}s)",
            f"  account snapshots: {_snapshots(cfg)}",
            f"  prices: {_prices(cfg)}",
            f"  state dir: {cfg.state.dir}",
        ]
    )


def _prices(cfg: Config) -> str:
    p = cfg.prices
    if not p.enabled:
        return "no prices source (the collar leans on account marks; see docs/prices.md)"
    where = f"{p.url}/prices" if p.url else f"ccxt {p.exchange} tickers"
    covered = ", ".join(sorted(p.symbols)) if p.symbols else "every configured symbol"
    return (f"{where} every {p.poll_interval_s}s (stale after {p.max_age_s}s), covering {covered}; "
            f"collar_missing_reference = {cfg.gate.collar_missing_reference}")  # fmt: skip


def _snapshots(cfg: Config) -> str:
    if cfg.accounts.snapshot_url:
        return f"polled from {cfg.accounts.snapshot_url} every {cfg.accounts.poll_interval_s}s"
    return "pushed through the Python API only (riskgate run cannot receive them: set accounts.snapshot_url)"


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args.path)
    if cfg is None:
        return 2
    print(_summary(args.path, cfg))
    if cfg.store.shared:
        from supervisor.cli_shared import describe_store

        usable, line = describe_store(cfg)
        print(line)
        return 0 if usable else 1
    return 0


def cmd_init_config(args: argparse.Namespace) -> int:
    from importlib import resources

    target = Path(args.path)
    if target.exists() and not args.force:
        print(f"riskgate init-config: {target} exists; keep it, or pass --force to overwrite", file=sys.stderr)
        return 2
    text = resources.files("supervisor.config").joinpath("example.toml").read_text(encoding="utf-8")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"riskgate init-config: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}; edit it, then: riskgate check-config {target}")
    return 0


def cmd_simulate_upstream(args: argparse.Namespace) -> int:
    from supervisor.logs import configure_logging
    from supervisor.sim.simulator import UpstreamSimulator

    configure_logging(args.log_format)
    try:
        sim = UpstreamSimulator(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.risk:
        sim.set_risk(args.risk)
    for name, equity in args.account:
        sim.set_account(name, equity)
    sim.set_prices(dict(args.price))
    with sim:
        print(f"upstream simulator on {sim.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        _wait_for_signal()
    return 0


def _wait_for_signal(on_hangup: Callable[[], None] | None = None, on_tick: Callable[[], None] | None = None) -> None:
    stop = threading.Event()
    hangup = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if on_hangup is not None:
        signal.signal(signal.SIGHUP, lambda *_: hangup.set())
    while not stop.wait(0.2):  # a timed wait keeps the main thread responsive to signals
        if on_hangup is not None and hangup.is_set():
            hangup.clear()
            on_hangup()
        if on_tick is not None:
            on_tick()


_READY_WAIT_S = 30.0


def cmd_run(args: argparse.Namespace) -> int:
    from supervisor.facade import RiskSupervisor
    from supervisor.logs import configure_logging, get_logger

    configure_logging(args.log_format)
    log = get_logger("riskgate.run")
    cfg = _load(args.config)
    if cfg is None:
        return 2
    if cfg.accounts.snapshot_url is None:
        log.warning(
            "no_account_source",
            detail="accounts.snapshot_url is not set: until the execution service posts each account's "
            "snapshot to POST /v1/accounts/NAME/snapshot, its orders block as ACCOUNT_STATE_STALE"
            if cfg.api.enabled
            else "accounts.snapshot_url is not set and [api] is disabled: nothing can report account "
            "snapshots, so every order will block as ACCOUNT_STATE_STALE",
        )
    api = cfg.api
    if api.enabled and api.execution_access == "token" and not api.clients:
        log.warning(
            "api_no_clients",
            detail="no [api.clients.NAME] is configured: no execution service can send orders, fills, outcomes "
            'or snapshots over HTTP (add one, or set api.execution_access = "open" on a private host)',
        )
    sup = RiskSupervisor(cfg, api=api.enabled)
    try:
        sup.start()
    except Exception as exc:  # noqa: BLE001 - reported, exit non-zero
        log.error("start_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    server = sup.api_server
    log.info(
        "riskgate_running",
        config=str(args.config),
        health_interval_s=cfg.health.interval_s,
        api=server.url if server is not None else None,
    )

    def reload() -> None:  # SIGHUP: problems are logged (config_reload_refused); nothing changes
        try:
            sup.reload(by="SIGHUP")
        except ConfigError:
            pass
        except Exception as exc:  # noqa: BLE001 - a reload that fails in a way not foreseen never ends the process
            log.error("config_reload_failed", error=f"{type(exc).__name__}: {exc}"[:300], effect="nothing changed")

    # Orders block until every source has reported: say when that is, or after
    # _READY_WAIT_S what is still missing.
    from supervisor.clock import SystemClock
    from supervisor.ops.systemd import Notifier

    monotonic = SystemClock().monotonic
    started = monotonic()
    told: list[str] = []
    # systemd (Type=notify): ready once the gate is open and the API listens; the watchdog is fed
    # only while the gate answers a reader within a second; the status line says why not trading.
    notifier = Notifier()
    notifier.send("READY=1", f"MAINPID={os.getpid()}", "STATUS=started: waiting for every source")
    fed, looked = [monotonic()], [0.0]

    def watch_readiness() -> None:
        now = monotonic()
        due = notifier.watchdog_s is not None and now - fed[0] >= notifier.watchdog_s / 2
        if due and sup.state_reader.gate_view(timeout=1.0) is not None:  # the gate answers: alive
            notifier.send("WATCHDOG=1")
            fed[0] = now
        if "ready" in told and (not notifier.enabled or now - looked[0] < 1.0):
            return
        looked[0] = now
        missing = sup.readiness()
        notifier.status("ready: every source fresh" if not missing else f"NOT READY: {'; '.join(missing)}")
        if "ready" in told:
            return
        if not missing:
            log.info("riskgate_ready", after_s=round(now - started, 3))
            told.append("ready")
        elif not told and now - started > _READY_WAIT_S:
            log.warning("not_ready", waited_s=_READY_WAIT_S, missing=missing)
            told.append("not_ready")

    try:
        _wait_for_signal(reload, watch_readiness)
    finally:
        notifier.send("STOPPING=1")
        sup.stop()
    log.info("riskgate_stopped")
    return 0


def _load(path: str) -> Config | None:
    """The configuration, or None after printing every problem in it."""
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_problems(exc)
        return None


def _unknown_account(cfg: Config, account: str, command: str) -> None:
    known = ", ".join(cfg.accounts.accounts) or "none"
    print(f"riskgate {command}: account {account!r} is not configured (known: {known})", file=sys.stderr)


def _print_problems(exc: ConfigError) -> None:
    print(f"{exc.source}: invalid configuration, {len(exc.problems)} problem(s):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _baseline_store(cfg: Config) -> Any:
    """A shared store's statements for an operator's command (store.backend = "postgresql")."""
    from supervisor.shared.store import SharedStore

    return SharedStore(cfg.store.dsn or "", f"{cfg.instance.name}/cli", "cli", cfg.store.timeout_s,
                       cfg.store.lease_ttl_s)  # fmt: skip


def cmd_baseline_set(args: argparse.Namespace) -> int:
    """An operator sets an account's day (and week) start equity for the current period."""
    import getpass
    import math

    from supervisor.clock import SystemClock
    from supervisor.core.periods import period_start
    from supervisor.logs import standalone_json_logger
    from supervisor.shared.baselines import operator_set_shared
    from supervisor.shared.db import SharedStoreError
    from supervisor.sources.baseline_store import StoreError, operator_set

    cfg = _load(args.config)
    if cfg is None:
        return 2
    if args.account not in cfg.accounts.accounts:
        _unknown_account(cfg, args.account, "baseline set")
        return 2
    equities = {"day": args.day_start_equity}
    if args.week_start_equity is not None:
        equities["week"] = args.week_start_equity
    for period, value in equities.items():
        if not math.isfinite(value) or not 0 < value <= cfg.accounts.max_plausible_usd:
            print(
                f"riskgate baseline set: --{period}-start-equity must be a number in "
                f"(0, {cfg.accounts.max_plausible_usd:g}], got {value}",
                file=sys.stderr,
            )
            return 2
    now = SystemClock().now()
    starts = {p: period_start(p, now, cfg.periods) for p in ("day", "week")}
    by = args.by or getpass.getuser()
    try:
        if cfg.store.shared:  # every instance's tracker takes it up from the shared store
            held = operator_set_shared(_baseline_store(cfg), args.account, equities, starts, by, now)
            later = [
                f"{p} ({b.source})" for _a, p, b in held if b.source != f"operator:{by}" or b.equity != equities[p]
            ]
            if later:
                print(
                    f"riskgate baseline set: a later operator's baseline holds for {', '.join(later)}", file=sys.stderr
                )
                return 1
        else:
            operator_set(cfg.state.dir, args.account, equities, starts, by, now)
    except (StoreError, SharedStoreError) as exc:
        print(f"riskgate baseline set: {exc}", file=sys.stderr)
        return 1
    standalone_json_logger().warning(
        "baseline_set_by_operator",
        account=args.account,
        by=by,
        **{f"{p}_start_equity": v for p, v in equities.items()},
        **{f"{p}_start": starts[p].isoformat() for p in equities},
        state_dir="shared store" if cfg.store.shared else str(cfg.state.dir),
    )
    for period, value in equities.items():
        print(f"{args.account}: {period} starting {starts[period]:%Y-%m-%d %H:%M} UTC: start equity {value:,.2f}")
    if "week" not in equities:
        print("week start equity unchanged (if it is unknown, orders still block: pass --week-start-equity)")
    print("a running riskgate takes this up within accounts.poll_interval_s")
    return 0


def cmd_baseline_show(args: argparse.Namespace) -> int:
    from supervisor.clock import SystemClock
    from supervisor.shared.baselines import read_shared
    from supervisor.shared.db import SharedStoreError
    from supervisor.sources.baseline_store import STORE_NAME, Baseline, StoreError, read_baselines

    cfg = _load(args.config)
    if cfg is None:
        return 2
    if args.account and args.account not in cfg.accounts.accounts:
        _unknown_account(cfg, args.account, "baseline show")
        return 2
    rows: dict[tuple[str, str], Baseline] = {}
    try:
        if cfg.store.shared:
            rows = read_shared(_baseline_store(cfg), SystemClock().now())
        elif (cfg.state.dir / STORE_NAME).exists():  # no store yet: every account shows "none yet"
            rows = read_baselines(cfg.state.dir)
    except (StoreError, SharedStoreError) as exc:
        print(f"riskgate baseline show: {exc}", file=sys.stderr)
        return 1
    print(f"{'account':<20} {'period':<6} {'period start (UTC)':<20} {'start equity':>16}  source")
    for account in cfg.accounts.accounts:
        if args.account and account != args.account:
            continue
        for period in ("day", "week"):
            b = rows.get((account, period))
            if b is None:
                print(f"{account:<20} {period:<6} {'-':<20} {'none yet':>16}  (no snapshot seen)")
                continue
            equity = "UNKNOWN" if b.equity is None else f"{b.equity:,.2f}"
            print(f"{account:<20} {period:<6} {b.period_start:%Y-%m-%d %H:%M}     {equity:>16}  {b.source}")
    return 0


def _journal_path(args: argparse.Namespace) -> Path | Callable[[], Any] | None:
    """This state folder's journal file, or (postgresql backend, no --local) every instance's."""
    from supervisor.journal.store import JOURNAL_NAME

    if args.state_dir:
        folder = Path(args.state_dir)
        if folder.exists() and not folder.is_dir():
            print(f"riskgate journal: --state-dir {folder} is not a folder", file=sys.stderr)
            return None
        return folder / JOURNAL_NAME
    cfg = _load(args.config)
    if cfg is None:
        return None
    if cfg.store.shared and not args.local:
        from supervisor.cli_shared import shared_journal

        return shared_journal(cfg)
    return cfg.state.dir / JOURNAL_NAME


def cmd_journal(args: argparse.Namespace) -> int:
    """List decisions (the default), explain one order, or count by code."""
    from supervisor.clock import SystemClock
    from supervisor.journal import query
    from supervisor.journal.store import Query, to_us

    command = args.journal_command or "list"
    path = _journal_path(args)
    if path is None:
        return 2
    if args.json and args.csv:
        print("riskgate journal: --json and --csv: choose one", file=sys.stderr)
        return 2
    if args.csv and command != "list":
        print(f"riskgate journal {command}: --csv is for the list; use --json", file=sys.stderr)
        return 2
    fmt = "json" if args.json else "csv" if args.csv else "table"
    now = SystemClock().now()
    try:
        since = query.parse_when(args.since, now) if args.since is not None else None
        until = query.parse_when(args.until, now) if args.until is not None else None
    except ValueError as exc:
        print(f"riskgate journal: --since/--until: {exc}", file=sys.stderr)
        return 2
    try:
        if command == "explain":
            return 0 if query.explain(path, args.order_id, fmt) else 1
        if command == "stats":
            query.stats(path, since, until, fmt)
            return 0
        q = Query(
            since_us=to_us(since) if since else None,
            until_us=to_us(until) if until else None,
            account=args.account,
            order_id=args.order_id,
            code=args.code,
            decision=args.decision,
            limit=args.limit,
        )
        query.list_decisions(path, q, fmt)
    except FileNotFoundError as exc:
        print(f"riskgate journal: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"riskgate journal: cannot read {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except RiskgateError as exc:  # the shared store: not reachable, no schema
        print(f"riskgate journal: {exc}", file=sys.stderr)
        return 1
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {port}")
    return port


def _pace(text: str) -> float:
    try:
        pace = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= pace <= 60:  # NaN fails too
        raise argparse.ArgumentTypeError(f"seconds between rows must be 0..60, got {text}")
    return pace


def cmd_demo(args: argparse.Namespace) -> int:
    from supervisor.sim.demo import run_demo

    keep = Path(args.keep) if args.keep is not None else None
    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        print(f"riskgate demo: --keep {keep}: give a new or empty folder (the day's journal starts there)",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.serve:
        if args.port is not None or args.pace is not None:
            print("riskgate demo: --port and --pace go with --serve", file=sys.stderr)
            return 2
        return run_demo(keep=keep)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    port = 8010 if args.port is None else args.port
    try:
        return run_demo(serve=True, port=port, pace_s=4.0 if args.pace is None else args.pace, stop=stop, keep=keep)
    except (OSError, RiskgateError) as exc:  # the port is taken
        print(f"riskgate demo: cannot serve on 127.0.0.1:{port}: {exc} (--port N picks another; 0: any free)",
              file=sys.stderr)  # fmt: skip
        return 1


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown on every option that has one (not "None", "[]" or "False")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, [], False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _ranged(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in [{low}, {high}], got {value}")
        return value

    return parse


def _reason_code(text: str) -> str:
    from supervisor.core.reasons import ReasonCode

    code = text.strip().upper()
    if code not in ReasonCode.__members__:
        raise argparse.ArgumentTypeError(f"unknown reason code {text!r}; one of: {', '.join(ReasonCode.__members__)}")
    return code


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _named_number(text: str, name: str, number: str, example: str) -> tuple[str, float]:
    """NAME=NUMBER, the number finite and > 0 (`simulate-upstream --account`, `--price`)."""
    key, sep, raw = text.partition("=")
    if not key or not sep:
        raise argparse.ArgumentTypeError(f"expected {name}={number} (e.g. {example}), got {text!r}")
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{number} must be a number, got {raw!r} in {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{number} must be a finite number > 0, got {raw!r}")
    return key, value


def _account_spec(text: str) -> tuple[str, float]:
    return _named_number(text, "NAME", "EQUITY", "main_binance=100000")


def _price_spec(text: str) -> tuple[str, float]:
    return _named_number(text, "SYMBOL", "PRICE", "BTCUSDT=65000")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskgate",
        description="Pre-trade risk supervisor: every order asked of an in-memory, fail-closed gate.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"riskgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:  # noqa: A002 - argparse's own keyword
        return sub.add_parser(name, help=help, description=description or help, formatter_class=_Help)

    config_help = "configuration file (TOML)"
    p = command("check-config", "validate a configuration file: every problem with its TOML path; exit 2, or 0")
    p.add_argument("path", nargs="?", default="config.toml", help=config_help)
    p.set_defaults(func=cmd_check_config)

    p = command(
        "init-config",
        "write the example configuration (every key, documented) to PATH",
        "Write the example configuration shipped with riskgate to PATH, to edit and then check with "
        "`riskgate check-config PATH`. An existing file is kept unless --force is given.",
    )
    p.add_argument("path", help="where to write it, e.g. config.toml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init_config)

    p = command(
        "run",
        "run the supervisor and its HTTP API until SIGINT/SIGTERM",
        "Start the gate and its state actors (Risk v3 poller, ESS watcher, account tracker), supervise them, "
        "serve the HTTP API at [api] host:port (decisions, state, /metrics, /healthz, /readyz; docs at /docs), "
        "and log JSON lines (health every [health] interval_s) until SIGINT or SIGTERM. SIGHUP reloads the "
        "config file (a bad one changes nothing).",
    )
    p.add_argument("--config", default="config.toml", help=config_help)
    p.add_argument("--log-format", choices=["json", "console"], default="json", help="log line format")
    p.set_defaults(func=cmd_run)

    p = command(
        "demo",
        "play a scripted trading day against the upstream simulator (about 2 s)",
        "Start the upstream simulator and a supervisor in this process, over real loopback HTTP, and play a "
        "scripted trading day on a fake clock: normal orders, a WARNING scale-down, single-trade-risk and "
        "exposure scale-downs, a strategy block, CRITICAL, the kill switch, Risk v3 going down and coming back, "
        "and a daily loss limit. One row per order: time, what happened upstream, the order, the decision, "
        "its reason code and the quantity sent; then the counts per decision. Needs no configuration. "
        "--serve also serves the HTTP API and its dashboard on 127.0.0.1:PORT and plays the day slowly, "
        "so it can be watched in a browser.",
    )
    p.add_argument("--serve", action="store_true", help="serve the dashboard and play the day slowly")
    p.add_argument("--port", type=_port, help="with --serve: the API's port on 127.0.0.1 (0: any free; default 8010)")
    p.add_argument(
        "--pace", type=_pace, help="with --serve: real seconds between two rows (0-60; default 4: about a minute a day)"
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the day's journal (DIR/state) and config (DIR/riskgate.toml) in this new folder: "
        "riskgate journal and riskgate replay read them after",
    )
    p.set_defaults(func=cmd_demo)

    p = command("baseline", "show or set the day/week start equity that loss limits count from")
    bsub = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    b = bsub.add_parser(
        "set",
        help="set an account's start equity for the current day (and week)",
        description="Set the equity the current day's (and week's) loss limits count from, e.g. after a lost "
        "baseline store blocked the account with BASELINE_UNKNOWN. A running riskgate takes it up.",
        formatter_class=_Help,
    )
    b.add_argument("account", help="a configured account name")
    b.add_argument("--day-start-equity", type=float, required=True, metavar="USD", help="equity at the day's start")
    b.add_argument("--week-start-equity", type=float, metavar="USD", help="equity at the week's start (optional)")
    b.add_argument("--config", default="config.toml", help=config_help)
    b.add_argument("--by", type=_non_empty, help="operator name for the record (default: the login name)")
    b.set_defaults(func=cmd_baseline_set)
    show_help = "list each configured account's current day and week start equity"
    b = bsub.add_parser("show", help=show_help, description=show_help, formatter_class=_Help)
    b.add_argument("account", nargs="?", help="only this account")
    b.add_argument("--config", default="config.toml", help=config_help)
    b.set_defaults(func=cmd_baseline_show)

    p = command(
        "journal",
        "list the decisions on record (or explain one order, or count them by code)",
        "Read the decision journal ({state.dir}/journal.sqlite), read-only: it works while `riskgate run` "
        "writes. --since/--until take ISO 8601 (UTC) or a span back from now: 90s, 15m, 2h, 1d.",
    )

    def where(p: argparse.ArgumentParser, csv: bool = True) -> None:
        p.add_argument("--config", default="config.toml", help=config_help + ": finds state.dir")
        p.add_argument("--state-dir", help="the state folder itself, instead of --config")
        p.add_argument("--since", help="from this time (ISO 8601, UTC) or span back (15m, 2h, 1d)")
        p.add_argument("--until", help="before this time (ISO 8601, UTC) or span back")
        p.add_argument("--json", action="store_true", help="one JSON object per line, for tools")
        if csv:
            p.add_argument("--csv", action="store_true", help="CSV with a header, for tools")
        else:
            p.set_defaults(csv=False)
        local_help = "with store.backend = \"postgresql\": only this instance's file, not every instance's"
        p.add_argument("--local", action="store_true", help=local_help)

    where(p)
    p.add_argument("--account", help="only this account")
    p.add_argument("--order-id", help="only this order id")
    p.add_argument("--code", type=_reason_code, help="only this reason code, e.g. DAILY_LOSS_LIMIT")
    p.add_argument("--decision", choices=["allow", "block", "scale_down"], help="only this decision")
    p.add_argument(
        "--limit", type=_ranged(1, 1_000_000, "--limit"), default=100, help="at most this many, newest first"
    )
    p.set_defaults(func=cmd_journal, journal_command="list")
    jsub = p.add_subparsers(dest="journal_command", metavar="[explain ORDER_ID | stats]")
    explain_help = "one order's decisions with every input, the check that decided, and the events before"
    j = jsub.add_parser("explain", help=explain_help, description=explain_help, formatter_class=_Help)
    j.add_argument("order_id", help="the order id")
    where(j, csv=False)  # an explanation is not a table
    stats_help = "decisions counted by account, decision and reason code"
    j = jsub.add_parser("stats", help=stats_help, description=stats_help, formatter_class=_Help)
    where(j, csv=False)

    p = command(
        "simulate-upstream",
        "serve Risk v3, ESS, account snapshots and prices on loopback",
        "Serve the upstream APIs riskgate reads (Global Risk v3, ESS in both contracts, account "
        "snapshots, prices) from real sample payloads, with POST /control/... to change what they answer.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_ranged(0, 65535, "--port"), default=8001, help="port to listen on (0: any free one)")
    p.add_argument("--risk", choices=["info", "warning", "critical"], help="serve this risk level from the start")
    p.add_argument(
        "--account",
        action="append",
        default=[],
        type=_account_spec,
        metavar="NAME=EQUITY",
        help="serve a snapshot for this account (repeatable)",
    )
    p.add_argument(
        "--price",
        action="append",
        default=[],
        type=_price_spec,
        metavar="SYMBOL=PRICE",
        help="serve this price at GET /prices (repeatable; [prices] url reads it)",
    )
    p.add_argument("--log-format", choices=["json", "console"], default="console", help="log line format")
    p.set_defaults(func=cmd_simulate_upstream)
    from supervisor.cli_control import add_control_commands
    from supervisor.cli_replay import add_replay_commands
    from supervisor.cli_shared import add_shared_commands
    from supervisor.cli_tokens import add_token_commands

    add_control_commands(command, _Help)
    add_shared_commands(command, _Help)
    add_token_commands(command, _Help)
    add_replay_commands(command, _Help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, not at exit: a closed pipe is caught below
        return code
    except BrokenPipeError:  # `riskgate journal ... | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
