"""`riskgate replay --candidate CANDIDATE.toml [--config LIVE.toml] [--since 1d] [--until ...]
[--account A] [--json|--csv]`: what a config would have decided, from the journal (supervisor.replay);
and `riskgate shadow [status | promote --reason R]`: the running riskgate's shadow config.

Reads the live instance's own journal file (its `state.dir`, or `--state-dir`), read-only: it
works while `riskgate run` writes. Prints how many decisions change, the transitions
(decision/code -> decision/code, count, notional), the accounts most affected and the first
changed orders (each one `riskgate journal explain ORDER_ID` explains). Exit 0 when it replayed,
1 when the journal cannot be replayed, 2 for a usage or config problem.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.cli_control import api_options, call_api
from supervisor.cli_tokens import ServiceEnvironment
from supervisor.clock import SystemClock
from supervisor.config import Config, ConfigError, changed_keys, load_config
from supervisor.journal.query import parse_when
from supervisor.journal.store import JOURNAL_NAME, to_us
from supervisor.logs import configure_logging
from supervisor.replay import Change, ReplayError, ReplayReport, change_json, replay_journal

__all__ = ["add_replay_commands"]

_CSV_FIELDS = ("time", "order_id", "account", "order", "notional_usd", "from", "to", "reason")


def _fail(text: str, code: int = 2) -> int:
    print(f"riskgate replay: {text}", file=sys.stderr)
    return code


def _config(path: str, what: str) -> Config | None:
    """A config file as `riskgate run` would read it; its `*_env` keys need not be set here."""
    try:
        return load_config(path, ServiceEnvironment())
    except ConfigError as exc:
        print(f"riskgate replay: {what} {exc.source}: invalid configuration, {len(exc.problems)} problem(s):",
              file=sys.stderr)  # fmt: skip
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_replay(args: argparse.Namespace) -> int:
    if args.json and args.csv:
        return _fail("--json and --csv: choose one")
    candidate = _config(args.candidate, "--candidate")
    if candidate is None:
        return 2
    differs: list[str] | None = None
    if args.state_dir:
        journal = Path(args.state_dir) / JOURNAL_NAME
    else:
        live = _config(args.config, "--config")
        if live is None:
            return 2
        journal = live.state.dir / JOURNAL_NAME
        differs = [k for k in changed_keys(live, candidate) if not k.startswith(("state", "shadow"))]
    if args.account is not None and args.account not in candidate.accounts.accounts:
        known = ", ".join(candidate.accounts.accounts) or "none"
        return _fail(f"--account {args.account!r} is not an account of the candidate (known: {known})")
    now = SystemClock().now()
    try:
        since = to_us(parse_when(args.since, now)) if args.since is not None else 0
        until = to_us(parse_when(args.until, now)) if args.until is not None else 2**62
    except ValueError as exc:
        return _fail(f"--since/--until: {exc}")
    configure_logging("console", level=logging.CRITICAL, stream=sys.stderr)  # the replayed gate's lines: noise
    on_change: Callable[[Change], None] | None = None
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=_CSV_FIELDS)
        writer.writeheader()

        def on_change(change: Change) -> None:
            row = change_json(change)
            row["from"], row["to"] = " ".join(map(str, row["from"])), " ".join(map(str, row["to"]))
            writer.writerow(row)

    try:
        report = replay_journal(journal, candidate, since, until, args.account, args.examples, on_change, args.workers)
    except ReplayError as exc:
        return _fail(str(exc), 1)
    if args.json:
        doc = report.as_json()
        if differs is not None:
            doc["candidate_differs"] = differs
        print(json.dumps(doc, indent=2))
    elif not args.csv:
        print(_text(report, args.candidate, differs))
    return 0


def _text(report: ReplayReport, candidate: str, differs: list[str] | None) -> str:
    doc = report.as_json()
    span = f"{report.first:%Y-%m-%d %H:%M} .. {report.last:%Y-%m-%d %H:%M} UTC" if report.first and report.last else ""
    pct = f" ({report.changed / report.redecided:.1%})" if report.redecided else ""
    lines = [
        f"replayed {report.total:,} decisions under {candidate}: {report.changed:,} changed{pct}",
        f"  {report.redecided:,} decided again, {report.runs} run(s) {span}".rstrip(),
    ]
    if differs is not None:
        lines.append(f"  the candidate differs from the live config in: {', '.join(differs) or 'nothing'}")
    if report.kept:
        kept = ", ".join(f"{why} {n:,}" for why, n in sorted(report.kept.items()))
        lines.append(f"  kept as recorded (not a config's decision): {kept}")
    if report.reloads:
        lines.append(
            f"  the live config was reloaded {report.reloads} time(s) meanwhile: the candidate stayed in force"
        )
    if doc["transitions"]:
        lines += ["", f"  {'from':<40} {'to':<40} {'count':>7} {'notional USD':>14}"]
        for t in doc["transitions"]:
            lines.append(
                f"  {' '.join(t['from']):<40} {' '.join(t['to']):<40} {t['count']:>7,} {t['notional_usd']:>14,.2f}"
            )
    if doc["accounts"]:
        lines += ["", "  accounts most affected:"]
        for a in doc["accounts"][:10]:
            lines.append(
                f"    {a['account']:<24} {a['changed']:>7,} of {a['decisions']:,} changed, {a['notional_usd']:,.2f} USD"
            )
    if report.examples:
        lines += ["", "  first changes (riskgate journal explain ORDER_ID):"]
        for c in report.examples:
            lines.append(
                f"    {c.when:%Y-%m-%d %H:%M:%S}  {c.order_id}  {c.account}  {c.order}  "
                f"{c.live[0]} {c.live[1]} -> {c.candidate[0]} {c.candidate[1]}: {c.reason}"
            )
    return "\n".join(lines)


def _said_shadow(doc: Any) -> str:
    if not isinstance(doc, dict):
        return str(doc)
    if "promoted" in doc:
        changed = ", ".join(doc.get("changed") or []) or "nothing"
        return (f"promoted {doc['promoted']}: it is the live config now (changed: {changed}); "
                f"the old file: {doc.get('backup')}")  # fmt: skip
    if not doc.get("enabled"):
        return "no shadow config ([shadow] config is not set)"
    problem = f" ({doc['problem']})" if doc.get("problem") else ""
    lines = [
        f"shadow {doc.get('candidate')}: {doc.get('state')}{problem}",
        f"  {doc.get('decided', 0):,} orders decided again, {doc.get('disagreements', 0):,} decided otherwise",
    ]
    for t in doc.get("transitions") or []:
        lines.append(f"  {' '.join(t['from']):<40} -> {' '.join(t['to']):<40} {t['count']:>7,}")
    for e in (doc.get("latest") or [])[:5]:
        live, shadow = " ".join(map(str, e.get("live", [])[:2])), " ".join(map(str, e.get("shadow", [])[:2]))
        lines.append(f"  latest: {e.get('time')}  {e.get('order_id')}  {e.get('account')}  {e.get('order')}  "
                     f"{live} -> {shadow}")  # fmt: skip
    return "\n".join(lines)


def add_replay_commands(
    command: Callable[..., argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    p = command(
        "replay",
        "decide the journal's orders again under a candidate config: what would change",
        "Re-decide every decision on record (this instance's journal) under CANDIDATE.toml, with the inputs "
        "the gate had then, and print how many change, the transitions (decision and code before -> after, "
        "count, notional), the accounts most affected and the first changed orders. With the live config as "
        "the candidate nothing changes. --since/--until take ISO 8601 (UTC) or a span back from now: 90s, "
        "15m, 2h, 1d.",
    )
    p.add_argument("--candidate", required=True, metavar="CANDIDATE.toml", help="the config to decide under")
    p.add_argument("--config", default="config.toml", help="the live configuration file: finds state.dir")
    p.add_argument("--state-dir", help="the live state folder itself, instead of --config")
    p.add_argument("--since", help="decisions from this time (ISO 8601, UTC) or span back (15m, 2h, 1d)")
    p.add_argument("--until", help="decisions before this time (ISO 8601, UTC) or span back")
    p.add_argument("--account", help="count only this account's decisions (every account is decided)")
    p.add_argument("--examples", type=int, default=10, choices=range(101), metavar="N", help="changes shown (0-100)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        choices=range(1, 65),
        metavar="N",
        help="processes deciding at once (1-64), the accounts split by exchange; --csv uses one",
    )
    p.add_argument("--json", action="store_true", help="the report as one JSON document")
    p.add_argument("--csv", action="store_true", help="every changed decision as CSV with a header")
    p.set_defaults(func=cmd_replay)

    p = command("shadow", "the running riskgate's shadow config: what it decides otherwise; promote it")
    sub = p.add_subparsers(dest="shadow_command", metavar="[status | promote]")
    p.set_defaults(func=lambda a: call_api(a, "GET", "/v1/shadow", needs_token=False, say=_said_shadow))
    api_options(p)
    s = sub.add_parser("status", help="its candidate, orders decided again, disagreements", formatter_class=formatter)
    api_options(s)
    s.set_defaults(func=lambda a: call_api(a, "GET", "/v1/shadow", needs_token=False, say=_said_shadow))
    s = sub.add_parser(
        "promote",
        help="make the candidate the live config (an operator's token; journaled)",
        description="The shadow's candidate file replaces the live config file (the old one is kept beside it, "
        "named .before-promote-TIME) and is reloaded. Refused when the candidate changes a restart-only key.",
        formatter_class=formatter,
    )
    s.add_argument("--reason", required=True, help="why: journaled with the operator's name")
    api_options(s)
    s.set_defaults(func=lambda a: call_api(a, "POST", "/v1/shadow/promote", {"reason": a.reason}, say=_said_shadow))
