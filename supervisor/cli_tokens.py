"""`riskgate token add NAME --operator|--client [--accounts A,B] --config FILE`: a new bearer token.

The token is drawn from the OS's CSPRNG, printed once, and never stored: the
config gets its SHA-256 in a new `[api.operators.NAME]` (or `[api.clients.NAME]`)
table, appended to the file. The file is written only if the result is still a
valid configuration (else nothing changes and the problem is said); a running
riskgate takes the token up at its next reload (`POST /v1/reload`, SIGHUP).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["ServiceEnvironment", "add_token_commands"]

_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_BARE = re.compile(r"[A-Za-z0-9_-]+")  # a TOML bare key; others (alice.smith, bob@desk) are quoted


class ServiceEnvironment(dict[str, str]):
    """The environment the service runs with, as far as validating the file goes: a `*_env` key
    names a variable this shell may not hold (systemd's EnvironmentFile): each reads as a
    distinct placeholder, so the file's own shape is what is checked."""

    def get(self, key: str, default: object = None) -> str:
        return os.environ.get(key) or f"placeholder-for-{key}-0123456789abcdef"


def _fail(text: str, code: int = 2) -> int:
    print(f"riskgate token add: {text}", file=sys.stderr)
    return code


def cmd_token_add(args: argparse.Namespace) -> int:
    from supervisor.config import ConfigError, load_config

    role = "operators" if args.operator else "clients"
    name = args.name
    if not _NAME.fullmatch(name):
        return _fail(f"NAME {name!r}: 1-64 letters, digits or _.@-")
    path = Path(args.config)
    try:
        before = path.read_text(encoding="utf-8")
        config = load_config(path, ServiceEnvironment())
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror or exc} (riskgate init-config writes one)")
    except ConfigError as exc:
        return _fail(f"{exc.source}: not a valid configuration yet ({exc.problems[0]}): fix it first")
    taken = {n.casefold() for n in (*config.api.operators, *config.api.clients)}
    if name.casefold() in taken:
        return _fail(f"{name!r} already has a token in {path}: each name one token (remove its table to replace it)")
    accounts: list[str] = []
    if args.accounts is not None:
        if args.operator:
            return _fail("--accounts limits a client; an operator acts for every account")
        accounts = [a.strip() for a in args.accounts.split(",") if a.strip()]
        unknown = [a for a in accounts if a not in config.accounts.accounts]
        if not accounts or unknown:
            known = ", ".join(config.accounts.accounts) or "none"
            return _fail(f"--accounts: {unknown[0] if unknown else 'none given'!r} is not a configured account "
                         f"(known: {known})")  # fmt: skip
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    key = name if _BARE.fullmatch(name) else f'"{name}"'  # the name checked above holds no quote or backslash
    table = [f"\n[api.{role}.{key}]", f'token_sha256 = "{digest}"  # riskgate token add: the token is not kept']
    if accounts:
        table.append("accounts = [" + ", ".join(f'"{a}"' for a in accounts) + "]")
    after = before + ("" if before.endswith("\n") or not before else "\n") + "\n".join(table) + "\n"
    tmp = path.with_name(f".{path.name}.token-add")
    try:
        tmp.write_text(after, encoding="utf-8")
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        try:
            load_config(tmp, ServiceEnvironment())  # still valid ([api] with an inline `operators` table clashes)
        except ConfigError as exc:
            tmp.unlink()
            return _fail(f"{path}: the new table would make the file invalid ({exc.problems[0]}); nothing changed")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        return _fail(f"{path}: cannot write: {exc.strerror or exc}; nothing changed", 1)
    print(token)
    kind = "operator" if args.operator else "client" + (f" for {', '.join(accounts)}" if accounts else "")
    print(
        f"{name}: {kind} token above, shown this once (only its SHA-256 is in {path}). A running riskgate "
        "takes it up at its next reload (POST /v1/reload, or SIGHUP).",
        file=sys.stderr,
    )
    return 0


def add_token_commands(
    command: Callable[..., argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    p = command("token", "bearer tokens for operators and execution clients")
    sub = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    a = sub.add_parser(
        "add",
        help="make a token: its hash goes into the config, the token is printed once",
        description="Make a new bearer token for NAME, print it once on stdout, and append its SHA-256 to the "
        "config as [api.operators.NAME] or [api.clients.NAME]. Nothing is written if the result would not be "
        "a valid configuration.",
        formatter_class=formatter,
    )
    a.add_argument("name", help="who holds it: 1-64 letters, digits or _.@-")
    role = a.add_mutually_exclusive_group(required=True)
    role.add_argument("--operator", action="store_true", help="halt, resume, overrides, reload, lockouts")
    role.add_argument("--client", action="store_true", help="an execution service: orders, fills, snapshots")
    a.add_argument("--accounts", metavar="A,B", help="a client only: the accounts it may act for (default: every one)")
    a.add_argument("--config", default="config.toml", help="the configuration file to add it to")
    a.set_defaults(func=cmd_token_add)
