"""`riskgate db ...` and `riskgate instances`: the shared store of several instances
(store.backend = "postgresql", docs/scale-out.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.config import Config, ConfigError, load_config

__all__ = ["add_shared_commands", "describe_store", "shared_journal"]

_CONFIG_HELP = "configuration file (TOML)"


def _shown(value: object) -> str:
    """Text from the database, safe on a terminal: control characters as '?'."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _load(path: str, what: str) -> Config | None:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    if not cfg.store.shared:
        print(f"riskgate {what}: {path} sets store.backend = \"{cfg.store.backend}\": nothing is shared "
              "(set [store] backend = \"postgresql\" and dsn; see docs/scale-out.md)", file=sys.stderr)  # fmt: skip
        return None
    return cfg


def describe_store(cfg: Config) -> tuple[bool, str]:
    """For check-config: (usable, one line on the shared store as found now)."""
    from supervisor.shared.db import SharedStoreError, connect, deadline
    from supervisor.shared.schema import SCHEMA_VERSION, schema_version

    dsn = cfg.store.dsn or ""
    try:
        conn = connect(dsn, cfg.store.timeout_s, "check-config")
    except SharedStoreError as exc:
        return False, f"  store: postgresql, NOT REACHABLE: {exc}"
    try:
        with deadline(conn, max(cfg.store.timeout_s, 5.0)):
            server = conn.info.parameter_status("server_version") or "?"
            version = schema_version(conn)
            if version is None:
                return False, f"  store: postgresql {server}, no riskgate schema: run `riskgate db migrate`"
            if version != SCHEMA_VERSION:
                return False, (f"  store: postgresql {server}, schema version {version} but this riskgate needs "
                               f"{SCHEMA_VERSION}: run `riskgate db migrate` (or upgrade riskgate)")  # fmt: skip
            live = conn.execute(
                "SELECT count(*) FROM instances WHERE NOT stopped"
                " AND heartbeat_at > clock_timestamp() - %s * INTERVAL '1 second'",
                (cfg.store.lease_ttl_s,),
            ).fetchone()
            return True, (f"  store: postgresql {server}, schema version {version}, {live[0] if live else 0} "
                          f"instance(s) live; this one is {cfg.instance.name!r}")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a store that answers wrongly is said, never a traceback
        return False, f"  store: postgresql, cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        conn.close()


def shared_journal(cfg: Config) -> Callable[[], Any]:
    """What `riskgate journal` opens with the postgresql backend: every instance's journal."""
    from supervisor.shared.journal_reader import SharedJournalReader

    return lambda: SharedJournalReader(cfg.store.dsn or "", cfg.store.timeout_s)


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from supervisor.shared.db import SharedStoreError, connect
    from supervisor.shared.schema import migrate

    cfg = _load(args.config, "db migrate")
    if cfg is None:
        return 2
    import psycopg

    from supervisor.shared.db import deadline, said

    try:
        conn = connect(cfg.store.dsn or "", max(cfg.store.timeout_s, 5.0), "migrate")
        try:
            # A server that stops answering is cut, never a hang; the DDL itself takes well under a second.
            with deadline(conn, max(5.0, 10 * cfg.store.timeout_s)):
                before, after = migrate(conn)
        finally:
            conn.close()
    except SharedStoreError as exc:
        print(f"riskgate db migrate: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"riskgate db migrate: nothing or part changed (each version is one transaction): {said(exc)}",
              file=sys.stderr)  # fmt: skip
        return 1
    if before == after:
        print(f"schema version {after}: up to date, nothing to do")
    else:
        print(f"schema version {before if before is not None else 'none'} -> {after}")
    return 0


def cmd_db_local(args: argparse.Namespace) -> int:
    from supervisor.shared.local_server import LocalServer, LocalServerError

    server = LocalServer(Path(args.dir).resolve(), args.port)
    try:
        if args.stop:
            server.stop("fast")
            print(f"stopped the server in {server.folder}")
            return 0
        server.start()
    except LocalServerError as exc:
        print(f"riskgate db local-server: {exc}", file=sys.stderr)
        return 1
    print(f"a throwaway PostgreSQL is running in {server.folder} (trust authentication, no fsync: never for real "
          "data). Its DSN, for [store] dsn or RISKGATE_STORE_DSN:")  # fmt: skip
    print(server.dsn("postgres"))
    return 0


def cmd_instances(args: argparse.Namespace) -> int:
    from supervisor.shared.db import SharedStoreError
    from supervisor.shared.keeper import instance_state
    from supervisor.shared.store import read_instances

    cfg = _load(args.config, "instances")
    if cfg is None:
        return 2
    try:
        instances, leases, halt = read_instances(cfg.store.dsn or "", max(cfg.store.timeout_s, 5.0))
    except SharedStoreError as exc:
        print(f"riskgate instances: {exc}", file=sys.stderr)
        return 1
    ttl = cfg.store.lease_ttl_s
    held: dict[str, dict[str, float]] = {}
    for lease in leases:
        held.setdefault(lease.instance, {})[lease.cap] = lease.units / 1_000_000
    rows: list[dict[str, Any]] = []
    for i in instances:
        state = instance_state(i.stopped, i.ready, i.heartbeat_age_s, cfg.store.max_age_s, ttl)
        rows.append({"name": i.name, "host": i.host, "pid": i.pid, "version": i.version, "api": i.api,
                     "heartbeat_age_s": round(i.heartbeat_age_s, 3), "state": state,
                     "leases_usd": held.get(i.name, {})})  # fmt: skip
    halt_doc = {"active": halt.active, "by": halt.by, "reason": halt.reason, "since": halt.since,
                "through": halt.instance}  # fmt: skip
    if args.json:
        print(json.dumps({"instances": rows, "operator_halt": halt_doc}))
        return 0
    print(f"{'instance':<20} {'state':<10} {'heartbeat':>10}  {'host':<16} {'pid':>7}  leases (USD)")
    for r in rows:
        leases_text = ", ".join(f"{cap} {usd:,.2f}" for cap, usd in sorted(held.get(r["name"], {}).items())) or "-"
        print(f"{_shown(r['name']):<20} {r['state']:<10} {r['heartbeat_age_s']:>9.1f}s  {_shown(r['host']):<16} "
              f"{r['pid']:>7}  {_shown(leases_text)}")  # fmt: skip
    shown = f"HALTED by {halt.by} since {halt.since}: {halt.reason}" if halt.active else "not halted"
    shown = _shown(shown)
    print(f"operator halt (every instance): {shown}")
    return 0


def add_shared_commands(command: Callable[..., argparse.ArgumentParser], formatter: Any) -> None:
    p = command(
        "db",
        "the shared PostgreSQL store of several instances: create or upgrade its schema",
        "Several riskgate instances share their journal, operator halt and caps through PostgreSQL "
        '([store] backend = "postgresql", docs/scale-out.md).',
    )
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    migrate_help = "create or upgrade the schema (versioned; `riskgate run` refuses one it does not know)"
    d = dsub.add_parser("migrate", help=migrate_help, description=migrate_help, formatter_class=formatter)
    d.add_argument("--config", default="config.toml", help=_CONFIG_HELP + ": its [store] dsn")
    d.set_defaults(func=cmd_db_migrate)
    local_help = "start (or --stop) a throwaway PostgreSQL from this machine's binaries, to try several instances"
    d = dsub.add_parser("local-server", help=local_help, description=local_help, formatter_class=formatter)
    d.add_argument("--dir", default="pgdata", help="its folder (created; kept for the next start)")
    d.add_argument("--port", type=int, default=5433, help="its port (it listens only on a socket in --dir)")
    d.add_argument("--stop", action="store_true", help="stop the server in --dir")
    d.set_defaults(func=cmd_db_local)

    p = command(
        "instances",
        "list the instances sharing the store: heartbeat, ready state, leases, and the shared halt",
        "Every instance that ever joined the shared store: its heartbeat's age, its state (ready, not ready, "
        "stopped, or gone: silent past store.lease_ttl_s), the budget it leases per cap, and the operator halt "
        "every instance obeys.",
    )
    p.add_argument("--config", default="config.toml", help=_CONFIG_HELP + ": its [store] dsn")
    p.add_argument("--json", action="store_true", help="one JSON object, for tools")
    p.set_defaults(func=cmd_instances)
