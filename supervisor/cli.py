"""The `riskgate` command."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from supervisor.config import Config, ConfigError, load_config

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
            f"  state dir: {cfg.state.dir}",
        ]
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.path)
    except ConfigError as exc:
        print(f"{exc.source}: invalid configuration, {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print(_summary(args.path, cfg))
    return 0


def cmd_simulate_upstream(args: argparse.Namespace) -> int:
    from supervisor.logs import configure_logging
    from supervisor.simulator import UpstreamSimulator

    configure_logging(args.log_format)
    try:
        sim = UpstreamSimulator(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.risk:
        sim.set_risk(args.risk)
    for spec in args.account:
        name, _, equity = spec.partition("=")
        sim.set_account(name, float(equity or 10_000.0))
    with sim:
        print(f"upstream simulator on {sim.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        _wait_for_signal()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass


def cmd_run(args: argparse.Namespace) -> int:
    from supervisor.facade import RiskSupervisor
    from supervisor.logs import configure_logging, get_logger

    configure_logging(args.log_format)
    log = get_logger("riskgate.run")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    sup = RiskSupervisor(cfg)
    try:
        sup.start()
    except Exception as exc:  # noqa: BLE001 - reported, exit non-zero
        log.error("start_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    log.info("riskgate_running", config=str(args.config), health_interval_s=cfg.health.interval_s)
    try:
        _wait_for_signal()
    finally:
        sup.stop()
    log.info("riskgate_stopped")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from supervisor.demo import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskgate", description="Pre-trade risk supervisor")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("path", nargs="?", default="config.toml")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("run", help="run the supervisor until SIGINT/SIGTERM")
    p.add_argument("--config", default="config.toml")
    p.add_argument("--log-format", choices=["json", "console"], default="json")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("demo", help="play a scripted trading day against the upstream simulator")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("simulate-upstream", help="serve Risk v3, ESS and account snapshots on loopback")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--risk", choices=["info", "warning", "critical"], help="serve this risk level from the start")
    p.add_argument("--account", action="append", default=[], metavar="NAME=EQUITY", help="serve a snapshot")
    p.add_argument("--log-format", choices=["json", "console"], default="console")
    p.set_defaults(func=cmd_simulate_upstream)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
