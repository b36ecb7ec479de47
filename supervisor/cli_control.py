"""`riskgate halt | resume | status | override ...`: steer a running riskgate through its HTTP API.

The API's address comes from `--url`, else from the config's `[api] host:port`.
The operator's token comes from `--token-file`, else the `RISKGATE_TOKEN`
environment variable; it is never taken on the command line (where `ps` and
shell histories would show it). Exit 0 on success, 1 when the API refuses
(its answer is printed), 2 for a usage or configuration problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from supervisor.core.halts import OPERATOR_HALT_SOURCE, halt_cause, operator_halts

__all__ = ["add_control_commands", "api_options", "call_api"]

TOKEN_ENV = "RISKGATE_TOKEN"  # noqa: S105 - the variable's name, not a token


def _fail(text: str) -> int:
    print(f"riskgate: {text}", file=sys.stderr)
    return 2


def _target(args: argparse.Namespace) -> tuple[str, str | None] | str:
    """(base URL, token), or what is wrong."""
    url = args.url
    if url is None:
        from supervisor.config import ConfigError, load_config

        try:
            api = load_config(args.config).api
        except ConfigError as exc:
            return f"{exc.source}: cannot read the config for [api] host:port ({exc.problems[0]}); give --url"
        host = f"[{api.host}]" if ":" in api.host else api.host
        url = f"http://{host}:{api.port}"
    token = None
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return f"--token-file {args.token_file}: {exc.strerror or exc}"
        if not token:
            return f"--token-file {args.token_file} is empty"
    else:
        token = os.environ.get(TOKEN_ENV) or None
    return url.rstrip("/"), token


def _when(iso: Any) -> str:
    """An ISO 8601 instant for people: 2026-12-04 22:05 UTC."""
    from datetime import UTC, datetime

    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(iso)


def _said_halt(doc: Any) -> str:
    if not isinstance(doc, dict):
        return str(doc)
    lifted = doc.get("lifted")
    if lifted is not None:
        names = "; ".join(f"{h.get('by')} ({'reduce-only' if h.get('mode') == 'reduce_only' else 'every order'}): "
                          f"{h.get('reason')}" for h in lifted)  # fmt: skip
        return f"resumed by {doc.get('by')}: lifted {len(lifted)} halt(s): {names}"
    if not doc.get("active"):
        return "no operator halt"
    lines = [f"halted ({'reduce-only' if doc.get('mode') == 'reduce_only' else 'every order'})"]
    for h in doc.get("halts") or []:
        kind = "reduce-only" if h.get("mode") == "reduce_only" else "every order"
        lines.append(f"  {kind} by {h.get('by')} since {_when(h.get('since'))}: {h.get('reason')}")
    return "\n".join(lines)


def _left(seconds: float) -> str:
    """A wait for people: 45 s, 54 min, 22 h, 3 days left (as the dashboard says it)."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s left"
    if seconds < 5400:
        return f"{round(seconds / 60)} min left"
    if seconds < 172_800:
        return f"{round(seconds / 3600)} h left"
    return f"{round(seconds / 86400)} days left"


def _said_lockouts(doc: Any) -> str:
    if not isinstance(doc, dict) or not doc:
        return "no account is locked"
    lines = []
    for account, locks in sorted(doc.items()):
        for lk in locks:
            until = f"until {_when(lk.get('until'))}" if lk.get("until") else "until an operator lifts it"
            left = lk.get("left_s")
            more = f" ({_left(left)})" if isinstance(left, int | float) else ""
            lines.append(f"{account}: {lk.get('code')} {until}{more}: {lk.get('cause')}; lifts {lk.get('lifts')}")
    return "\n".join(lines)


def _said_clear(doc: Any) -> str:
    if not isinstance(doc, dict):
        return str(doc)
    if doc.get("state") == "awaiting_second_operator":
        return f"{doc.get('account')}: clear asked by {doc.get('requested_by')}; another operator confirms it"
    return f"{doc.get('account')}: cooldown cleared by {doc.get('by')} (it ran until {_when(doc.get('was_until'))})"


def _said_override(doc: Any) -> str:
    records = doc if isinstance(doc, list) else [doc]
    if not records:
        return "no overrides"
    lines = []
    for r in records:
        if not isinstance(r, dict):
            lines.append(str(r))
            continue
        ends = f", ends {_when(r.get('expires_at'))}" if r.get("expires_at") else ""
        by = ", ".join(str(x) for x in (r.get("proposed_by"), r.get("approved_by")) if x)
        lines.append(
            f"override {r.get('id')} for {r.get('account')}: {r.get('state')} (by {by}){ends}: {r.get('reason')}"
        )
    return "\n".join(lines)


def _call(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: Any = None,
    needs_token: bool = True,
    say: Callable[[Any], str] | None = None,
) -> int:
    """One request; the answer in words (`say`), or as JSON with --json; a refusal in one line."""
    import httpx

    target = _target(args)
    if isinstance(target, str):
        return _fail(target)
    url, token = target
    if needs_token and token is None:
        return _fail(f"an operator token is needed: set {TOKEN_ENV} or give --token-file")
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(
            method,
            url + path,
            headers=headers,
            content=None if body is None else json.dumps(body),
            timeout=args.timeout,
        )
    except Exception as exc:  # noqa: BLE001 - httpx.HTTPError, InvalidURL (a typo in --url): said, never a traceback
        print(f"riskgate: cannot reach {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    as_json = getattr(args, "json", False)
    if not response.is_success and not as_json:
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        print(f"riskgate: refused ({response.status_code}): {detail}", file=sys.stderr)
        return 1
    out = sys.stdout if response.is_success else sys.stderr
    if say is not None and not as_json:
        print(say(answer), file=out)
    else:
        print(json.dumps(answer, indent=2, sort_keys=True) if not isinstance(answer, str) else answer, file=out)
    return 0 if response.is_success else 1


#: `riskgate status` exit codes, by verdict (docs/operations.md).
STATUS_EXIT = {"TRADING": 0, "REDUCE-ONLY": 1, "HALTED": 1, "FAIL-CLOSED": 2, "NOT READY": 2, "UNREACHABLE": 3}


def _status(args: argparse.Namespace) -> int:
    """One verdict with every cause: TRADING, REDUCE-ONLY, HALTED, FAIL-CLOSED, NOT READY or
    UNREACHABLE (exit 0, 1, 1, 2, 2, 3); the locked accounts; the instances when there are several."""
    import httpx

    target = _target(args)
    doc: Any = None
    if isinstance(target, str):  # the gate's state was never read: unreachable, whatever the cause
        why: str | None = target
    else:
        url, token = target
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            response = httpx.get(url + "/v1/state", headers=headers, timeout=args.timeout)
            doc = response.json() if response.is_success else None
            why = None if response.is_success else f"GET /v1/state answered {response.status_code}"
            if response.status_code in (401, 403):
                why = f"{why}: reading the state needs a token here (set {TOKEN_ENV} or give --token-file)"
        except Exception as exc:  # noqa: BLE001 - a refused connection, a typo in --url, a body not JSON
            doc, why = None, f"cannot reach {url}: {_plain_error(exc)}"
    if not isinstance(doc, dict) or not isinstance(doc.get("banner"), dict):
        found: dict[str, Any] = {"verdict": "UNREACHABLE", "causes": [why or "GET /v1/state: not a state document"]}
    else:
        found = _verdict(doc)
    found["exit"] = STATUS_EXIT[found["verdict"]]
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
    else:
        print(_said_status(found))
    return int(found["exit"])


def _plain_error(exc: Exception) -> str:
    """A connection failure in words: "connection refused", not "ConnectError: [Errno 111] ..."."""
    text = str(exc)
    known = (
        ("Connection refused", "connection refused (is riskgate running there?)"),
        ("timed out", "no answer in time"),
        ("Name or service not known", "no such host"),
    )
    for needle, said in known:
        if needle in text:
            return said
    return f"{type(exc).__name__}: {text}"[:300]


def _verdict(doc: dict[str, Any]) -> dict[str, Any]:
    banner = doc["banner"]
    verdict = str(banner.get("state"))
    not_ready = [str(m) for m in doc.get("not_ready") or []]
    if verdict == "TRADING" and not_ready:
        verdict = "NOT READY"
    if verdict not in STATUS_EXIT:
        verdict = "FAIL-CLOSED"  # a state this riskgate does not know: not trading
    causes = [said for c in banner.get("causes") or [] if isinstance(c, dict) for said in _said_cause(c, doc)]
    also = [said for c in banner.get("also") or [] if isinstance(c, dict) for said in _said_cause(c, doc)]
    lockouts = {
        name: [f"{lk.get('code')} until {_when(lk['until']) if lk.get('until') else 'an operator lifts it'}: "
               f"{lk.get('cause')}"
               for lk in row.get("lockouts") or []]
        for name, row in (doc.get("accounts") or {}).items()
        if isinstance(row, dict) and row.get("lockouts")
    }  # fmt: skip
    found: dict[str, Any] = {
        "verdict": verdict,
        "causes": causes + (not_ready if verdict == "NOT READY" else []),
        "also": also,
        "accounts_failing_closed": list(banner.get("accounts_blocked") or []),
        "lockouts": lockouts,
        "symbols_paused": [str(x) for x in banner.get("symbols_paused") or []],
        "symbols_unpriced": [str(x) for x in banner.get("symbols_unpriced") or []],
    }
    store = doc.get("store")
    if isinstance(store, dict) and store.get("backend") == "postgresql":
        found["instances"] = [
            f"{i.get('name')}: {i.get('state')}, heartbeat {i.get('heartbeat_age_s')} s ago"
            for i in store.get("instances") or []
            if isinstance(i, dict)
        ]
    return found


_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?")


def _said_cause(cause: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """A banner cause for people: a halt says who halts ("by ESS (http): drill", "by kill switch
    file ...", "by operator alice: drill"; one line per operator), each with since when; any other
    cause its detail. Times rounded to the minute, never raw ISO 8601."""
    detail = _ISO.sub(lambda m: _when(m.group()), str(cause.get("detail")))
    source = str(cause.get("source") or "")
    if cause.get("kind") != "halt" or not source.startswith("ess/"):
        return [detail]
    name = source.removeprefix("ess/")
    since = f" (since {_when(cause['since'])})" if cause.get("since") else ""
    if name != OPERATOR_HALT_SOURCE:
        return [f"by {halt_cause(name, detail)}{since}"]
    mode = "reduce_only" if str(cause.get("detail")).startswith("reduce-only") else "all"
    halt = doc.get("operator_halt")
    held = [h for h in (halt.get("halts") or []) if isinstance(h, dict)] if isinstance(halt, dict) else []
    mine = [(h.get("by"), h.get("since"), h.get("reason")) for h in held if h.get("mode", "all") == mode]
    if not mine and mode == "all":
        mine = list(operator_halts(str(cause.get("detail"))))
    if not mine:
        return [detail]
    return [f"by operator {by}: {reason}" + (f" (since {_when(at)})" if at else "") for by, at, reason in mine]


def _said_status(found: dict[str, Any]) -> str:
    def after(verdict: str, cause: str) -> str:
        return f"{verdict} {cause}" if cause.startswith("by ") else f"{verdict} because {cause}"

    lines = [after(found["verdict"], found["causes"][0]) if found["causes"] else found["verdict"]]
    lines += [f"  and {c}" for c in found["causes"][1:]]
    lines += [f"  also {c}" for c in found.get("also", [])]
    if found.get("accounts_failing_closed"):
        lines.append(f"accounts failing closed: {', '.join(found['accounts_failing_closed'])}")
    for name, locks in found.get("lockouts", {}).items():
        lines.append(f"locked: {name}: {'; '.join(locks)}")
    if found.get("symbols_paused"):
        lines.append(f"paused after a price spike (opening orders block): {', '.join(found['symbols_paused'])}")
    if found.get("symbols_unpriced"):
        lines.append(f"no fresh price (opening orders block): {', '.join(found['symbols_unpriced'])}")
    for row in found.get("instances", []):
        lines.append(f"instance {row}")
    return "\n".join(lines)


def api_options(p: argparse.ArgumentParser) -> None:
    """--url, --config, --token-file, --timeout (and --json): where the running riskgate's API is."""
    p.add_argument("--url", help="the API's base URL (default: http://[api] host:port from --config)")
    p.add_argument("--config", default="config.toml", help="configuration file, for [api] host:port")
    p.add_argument("--token-file", metavar="PATH", help=f"file holding the operator's token (default: ${TOKEN_ENV})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the API")
    if "json" not in {a.dest for a in p._actions}:
        p.add_argument("--json", action="store_true", help="the API's answer as JSON, for tools")


call_api = _call  # for the other command groups that steer a running riskgate (cli_replay)


def add_control_commands(
    command: Callable[..., argparse.ArgumentParser], formatter: type[argparse.HelpFormatter]
) -> None:
    where = api_options

    p = command(
        "halt", "halt every order at a running riskgate, or with --reduce-only every order that grows a position"
    )
    p.add_argument("--reason", required=True, help="why: journaled with the operator's name")
    p.add_argument(
        "--reduce-only",
        action="store_true",
        help="block only orders that open or grow a position (REDUCE_ONLY_MODE); reducing ones pass",
    )
    where(p)
    p.set_defaults(
        func=lambda a: _call(
            a,
            "POST",
            "/v1/halt",
            {"reason": a.reason, "mode": "reduce_only" if a.reduce_only else "all"},
            say=_said_halt,
        )
    )

    p = command("resume", "lift every operator halt (an ESS or kill-switch halt stays); says what it lifted")
    p.add_argument("--reason", default="resumed", help="why: journaled")
    where(p)
    p.set_defaults(func=lambda a: _call(a, "POST", "/v1/resume", {"reason": a.reason}, say=_said_halt))

    p = command(
        "status",
        "one verdict with every cause (exit 0 trading, 1 reduce-only or halted, 2 fail-closed or not ready, "
        "3 unreachable)",
    )
    p.add_argument("--json", action="store_true", help="the verdict as one JSON object on stdout")
    where(p)
    p.set_defaults(func=_status)

    p = command("lockouts", "accounts a lockout holds (loss limit, drawdown, cooldown, unknown baseline); clear one")
    lsub = p.add_subparsers(dest="lockouts_command", required=True, metavar="ACTION")
    o = lsub.add_parser(
        "list", help="every locked account: code, cause, since, until, what lifts it", formatter_class=formatter
    )
    where(o)
    o.set_defaults(func=lambda a: _call(a, "GET", "/v1/lockouts", needs_token=False, say=_said_lockouts))
    o = lsub.add_parser(
        "clear",
        help="lift an account's cooldown (an operator's token; journaled)",
        description="Lift ACCOUNT's cooldown after a loss limit tripped. The other lockouts hold while their "
        "cause does (the loss beyond the limit, an unknown baseline: `riskgate baseline set`). With "
        "[overrides] lockout_clear_two_person = true, a second operator runs the same command to confirm.",
        formatter_class=formatter,
    )
    o.add_argument("account")
    o.add_argument("--reason", required=True, help="why: journaled")
    where(o)
    o.set_defaults(func=lambda a: _call(a, "POST", f"/v1/lockouts/{quote(a.account, safe='')}/clear",
                                        {"reason": a.reason}, say=_said_clear))  # fmt: skip

    p = command("override", "two-person emergency overrides: propose, approve (another operator), list, revoke")
    osub = p.add_subparsers(dest="override_command", required=True, metavar="ACTION")
    o = osub.add_parser(
        "propose",
        help="propose an override for an account; another operator approves it",
        description="Propose that ACCOUNT's reduce-only orders pass halts, stale Risk v3 and CRITICAL for "
        "--ttl seconds once another operator approves (riskgate override approve ID).",
        formatter_class=formatter,
    )
    o.add_argument("account")
    o.add_argument("--reason", required=True, help="why: journaled")
    o.add_argument("--ttl", type=float, required=True, metavar="SECONDS", help="how long, at most overrides.max_ttl_s")
    where(o)
    o.set_defaults(
        func=lambda a: _call(
            a, "POST", "/v1/overrides", {"account": a.account, "reason": a.reason, "ttl_s": a.ttl}, say=_said_override
        )
    )
    help_ = "approve another operator's proposal: it is active for its ttl from now"
    o = osub.add_parser("approve", help=help_, description=help_ + " (the proposer cannot)", formatter_class=formatter)
    o.add_argument("id")
    where(o)
    o.set_defaults(func=lambda a: _call(a, "POST", f"/v1/overrides/{a.id}/approve", say=_said_override))
    help_ = "proposed, active and ended overrides (GET /v1/overrides)"
    o = osub.add_parser("list", help=help_, description=help_, formatter_class=formatter)
    where(o)
    o.set_defaults(func=lambda a: _call(a, "GET", "/v1/overrides", needs_token=False, say=_said_override))
    help_ = "revoke a proposal or an active override: the account's orders are held again at once"
    o = osub.add_parser("revoke", help=help_, description=help_, formatter_class=formatter)
    o.add_argument("id")
    where(o)
    o.set_defaults(func=lambda a: _call(a, "DELETE", f"/v1/overrides/{a.id}", say=_said_override))
