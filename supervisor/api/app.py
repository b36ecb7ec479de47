"""The FastAPI application (docs/http-api.md).

Bodies are read by riskgate's own code, never trusted to a framework: at
most `MAX_BODY_BYTES`, JSON with no key given twice (an ambiguous order is
not guessed at), then the same validation as the Python API. A body that is
not JSON is a 422; an order that is JSON but not a valid order is an
INVALID_ORDER decision (200) naming the problem; state reports that cannot be
read are a 422 naming the field; an unconfigured account is a 404.

Endpoints that change state need an operator's bearer token (`[api.operators]`);
with `api.read_access = "token"` the read endpoints do too. Probes
(`/healthz`, `/readyz`) are always open. Every refused token is journaled.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from supervisor.api.answers import dumps, result_bytes, result_json
from supervisor.api.auth import Gatekeeper, Role, is_json
from supervisor.api.models import (
    BODIES,
    AccountStateOut,
    DecisionExplained,
    DecisionOut,
    DecisionRow,
    HaltOut,
    LockoutClearOut,
    LockoutOut,
    MessagesOut,
    OutcomeOut,
    OverrideOut,
    Problem,
    Problems,
    RatesOut,
    ReadyOut,
    ReloadOut,
    SeriesOut,
    ShadowOut,
    ShadowPromoteOut,
    StateOut,
)
from supervisor.api.service import Basics, Decider, GateService, Operator, Reader, Reporter, ShadowKeeper
from supervisor.config import ConfigError
from supervisor.core.messages import AccountState, Fill, OrderOutcome, RiskGateResult
from supervisor.core.orders import MAX_NAME_LENGTH, account_of
from supervisor.core.reasons import ReasonCode
from supervisor.core.values import shorten
from supervisor.journal.query import SERIES_RANGES, parse_when
from supervisor.journal.store import JournalUnreadableError, to_us
from supervisor.ops.controls import ControlError
from supervisor.ops.metrics import CONTENT_TYPE
from supervisor.sources.upstream import UpstreamError, check_fill, check_outcome, parse_account_snapshot
from supervisor.version import __version__

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "build_app", "evaluate_body", "evaluate_line", "read_json", "result_json"]

MAX_BODY_BYTES = 1_000_000
MAX_BATCH = 1_000
MAX_DECISIONS = 1_000
MAX_MESSAGES = 1_000  # cancels or edits in one report
_MAX_ORDER_KEYS = 20  # an order has 11 fields; far more is junk, refused before it is copied


class _BodyError(Exception):
    def __init__(self, status: int, detail: str, ambiguous: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.ambiguous = ambiguous  # JSON, but with a key given twice


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BodyError(422, f"key {shorten(key, 40)} appears twice: an ambiguous body is refused", True)
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _parse(raw: bytes) -> Any:
    try:
        if type(raw) is bytes:  # json.loads, without the decoder it would build for every body
            return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except _BodyError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _BodyError(422, f"body is not JSON: {str(exc)[:120]}") from None


def read_json(raw: bytes) -> Any:
    """`raw` read as the API reads every body (JSON, no key given twice); `ValueError` naming why not."""
    try:
        return _parse(raw)
    except _BodyError as error:
        raise ValueError(error.detail) from None


async def _body(request: Request) -> bytes:
    size = 0
    chunks = []
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyError(413, f"body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _BodyError(400, "the client went away before its body arrived") from None
    return b"".join(chunks)


def _query_refused(request: Request, known: tuple[str, ...]) -> Response | None:
    """A query with an unknown or repeated parameter is ambiguous: 422 naming it."""
    for key in request.query_params:
        if key not in known:
            return _problem(422, f"{shorten(key, 40)}: unknown query parameter (known: {', '.join(known)})")
        if len(request.query_params.getlist(key)) > 1:
            return _problem(422, f"{key}: given more than once")
    return None


async def _json(request: Request) -> Any:
    return _parse(await _body(request))


Scope = tuple[str, frozenset[str]] | None  # (client, the accounts it may act for), or None: any


@dataclass(frozen=True, slots=True)
class _Messages:
    """POST /v1/messages: cancels or edits a client sent for an account (read as the other reports are)."""

    account: str
    kind: str
    count: int = 1


Report = Fill | OrderOutcome | _Messages


async def evaluate_body(service: Decider, raw: bytes, scope: Scope = None) -> tuple[int, bytes]:
    """POST /v1/evaluate from its raw body to (status, JSON bytes): shared by the
    FastAPI route and the ASGI fast path in front of it (`supervisor.api.fast`)."""
    order, answer = _order_or_answer(service, raw)
    if answer is not None:
        return answer
    return 200, result_bytes(await _decide(service, order, scope))


def evaluate_line(service: Decider, raw: bytes, scope: Scope = None) -> tuple[int, bytes]:
    """`evaluate_body` decided on the caller's thread (the order socket's, supervisor.api.order_socket):
    the same parsing, refusals and answers."""
    order, answer = _order_or_answer(service, raw)
    if answer is not None:
        return answer
    refused = _refused_order(service, order, scope)
    return 200, result_bytes(refused if refused is not None else service.evaluate(order))


def _order_or_answer(service: Decider, raw: bytes) -> tuple[Any, tuple[int, bytes] | None]:
    """(the order read from `raw`, None), or (None, the answer) when it cannot be read as one."""
    try:
        return _parse(raw), None
    except _BodyError as error:
        if error.ambiguous:  # JSON, but which value was meant? An INVALID_ORDER decision.
            return None, (200, result_bytes(service.reject({}, error.detail)))
        return None, (error.status, dumps({"detail": error.detail}))


async def _decide(service: Decider, order: Any, scope: Scope = None) -> RiskGateResult:
    refused = _refused_order(service, order, scope)
    return refused if refused is not None else await service.evaluate_async(order)


def _refused_order(service: Decider, order: Any, scope: Scope) -> RiskGateResult | None:
    """The block of an order refused before the gate (too many fields, an account the client may
    not trade), journaled; None: the gate decides it."""
    if isinstance(order, dict) and len(order) > _MAX_ORDER_KEYS:
        return service.reject(order, f"an order has at most {_MAX_ORDER_KEYS} fields, got {len(order)}")
    if scope is not None:
        account = account_of(order)
        if account is not None and account not in scope[1]:  # unreadable: validation names it
            why = f"client {scope[0]} may not trade account {shorten(account, 60)} ([api.clients.{scope[0]}] accounts)"
            return service.reject(order, why, ReasonCode.CLIENT_NOT_PERMITTED)
    return None


_UNAUTHORIZED = {
    "operator": "an operator's bearer token is required (Authorization: Bearer TOKEN; [api.operators])",
    "client": "an execution client's bearer token is required (Authorization: Bearer TOKEN; [api.clients])",
    "reader": "an operator's or client's bearer token is required (api.read_access = \"token\")",
}


def refusal(
    service: Basics,
    keeper: Gatekeeper,
    role: Role,
    method: str,
    path: str,
    content_type: str | None,
    authorization: list[str],
    client: str | None,
) -> tuple[int, bytes, dict[str, str]] | None:
    """(status, body, headers) refusing a request before its body is read, or None.
    `role` "client" is needed only with `api.execution_access = "token"`, "reader"
    only with `api.read_access = "token"`; "operator" always."""
    api = service.config.api
    needed = role == "operator" or (role == "client" and api.execution_access == "token")
    needed = needed or (role == "reader" and api.read_access == "token")
    if needed and keeper.who(authorization, role) is None:
        known = keeper.who(authorization, "reader")  # a valid token, of another role?
        keeper.refused(authorization, method, path, client, known)
        if known is not None:
            kind = "an operator" if known in api.operators else "an execution client"
            return 403, dumps({"detail": f"the token is {known}'s, {kind}'s: {_UNAUTHORIZED[role]}"}), {}
        return 401, dumps({"detail": _UNAUTHORIZED[role]}), {"WWW-Authenticate": 'Bearer realm="riskgate"'}
    if not is_json(content_type):
        return 415, dumps({"detail": "the body must be JSON, sent as Content-Type: application/json"}), {}
    return None


def _account_json(state: AccountState) -> dict[str, Any]:
    return {
        "account": state.account,
        "equity": state.equity,
        "day_start_equity": state.day_start_equity,
        "week_start_equity": state.week_start_equity,
        "positions": [
            {"symbol": p.symbol, "exchange": p.exchange, "quantity": p.quantity, "mark_price": p.mark_price}
            for p in state.positions
        ],
        "problem": state.problem,
        "baseline_unknown": list(state.baseline_unknown),
    }


def _ok(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def _problem(status: int, detail: str, **extra: Any) -> Response:
    return _ok({"detail": detail, **extra}, status)


Responses = dict[int | str, dict[str, Any]]

# The bearer token each role's routes document: an operator's always; an execution client's or a
# reader's only where api.execution_access or api.read_access says "token", a setting a reload
# may change after the schema is made: optional there ({} is "no token").
_SECURITY: dict[Role, list[dict[str, list[str]]]] = {
    "operator": [{"bearer": []}],
    "client": [{"bearer": []}, {}],
    "reader": [{"bearer": []}, {}],
}
_NO_TOKEN = {
    "operator": "no operator's bearer token, or an unknown one ([api.operators])",
    "client": 'no execution client\'s bearer token, or an unknown one (with api.execution_access = "token")',
    "reader": 'no bearer token, or an unknown one (with api.read_access = "token")',
}
_WRONG_ROLE = {  # a reader may be either: no token is of the wrong role there
    "operator": "an execution client's token: an operator's is required",
    "client": "an operator's token: an execution client's is required",
}


def _guarded(role: Role, responses: Responses, forbidden: str = "", **route: Any) -> dict[str, Any]:
    """A route's decorator arguments when it takes `role`'s bearer token: its `responses` with
    the 401 and 403 it answers for the token (and `forbidden`: its own reasons for a 403), and
    the bearer scheme as its `security`."""
    refused: Responses = {401: {"model": Problem, "description": _NO_TOKEN[role]}}
    why = [w for w in (_WRONG_ROLE.get(role, ""), forbidden) if w]
    if why:
        refused[403] = {"model": Problem, "description": "; ".join(why)}
    extra = {**route.pop("openapi_extra", {}), "security": _SECURITY[role]}
    return {"responses": {**responses, **refused}, "openapi_extra": extra, **route}


# The dashboard: static files shipped in the package, read once. Its page asks
# nothing of other origins and may not be framed (its buttons halt trading).
_DASHBOARD_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}
DASHBOARD_SHA256 = {  # uplot@1.6.32 from the npm registry, unchanged (dashboard/VENDORED.md)
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}
_DASHBOARD_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _dashboard_files() -> dict[str, bytes]:
    folder = resources.files("supervisor.api").joinpath("dashboard")
    return {name: folder.joinpath(name).read_bytes() for name in _DASHBOARD_TYPES}


# The API's documentation page: Swagger UI vendored in the package (docs_ui/VENDORED.md), never a
# CDN's script in this origin (it could read a token pasted into the Authorize dialog), served
# under the dashboard's CSP. Redoc is not served (its styles are injected inline).
_DOCS_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
_DOCS_SHA256 = {  # swagger-ui-dist@5.35.0, unchanged
    "swagger-ui-bundle.js": "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    "swagger-ui.css": "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
}


def _docs_files() -> dict[str, bytes]:
    folder = resources.files("supervisor.api").joinpath("docs_ui")
    return {name: folder.joinpath(name).read_bytes() for name in _DOCS_TYPES}


class _Http:
    """What every route shares: the token check and the JSON body reader."""

    def __init__(self, service: Basics, keeper: Gatekeeper) -> None:
        self.keeper = keeper
        self._service = service

    def guard(self, request: Request, role: Role, body: bool = False) -> Response | None:
        """A refusal (401, 415) for this request, or None to go on."""
        status, payload, headers = refusal(
            self._service,
            self.keeper,
            role,
            request.method,
            request.url.path,
            request.headers.get("content-type") if body else "application/json",
            request.headers.getlist("authorization"),
            request.client.host if request.client else None,
        ) or (0, b"", {})
        return Response(payload, status, headers, media_type="application/json") if status else None

    async def body_of(self, request: Request, role: Role) -> tuple[Any, Response | None]:
        refused = self.guard(request, role, body=True)
        if refused is not None:
            return None, refused
        try:
            return await _json(request), None
        except _BodyError as exc:
            return None, _problem(exc.status, exc.detail)


def build_app(service: GateService, decider: Decider | None = None) -> FastAPI:
    """The API: each group of routes is handed only the part of the service it uses;
    orders go to `decider` (default: `service`)."""
    app = FastAPI(
        title="riskgate",
        version=__version__,
        summary="Pre-trade risk gate: every order decided allow, block or scale_down, fail-closed.",
        docs_url=None,  # served below from the package, not from a CDN
        redoc_url=None,
    )
    keeper = Gatekeeper(decider or service)  # on every order's path: the part that answers orders
    app.state.gatekeeper = keeper  # the fast path checks tokens the same way
    http = _Http(service, keeper)
    _page_routes(app)
    _probe_routes(app, service)
    _decision_routes(app, http, decider or service)
    _journal_routes(app, http, service)
    _report_routes(app, http, service)
    _reader_routes(app, http, service)
    _control_routes(app, http, service)
    _shadow_routes(app, http, service)
    _document_bodies(app)
    return app


def _page_routes(app: FastAPI) -> None:
    # -- the dashboard (static; its data comes from the reader endpoints below) ----------------
    dashboard = _dashboard_files()

    def page(name: str, files: dict[str, bytes] = dashboard, types: dict[str, str] = _DASHBOARD_TYPES) -> Response:
        return Response(files[name], 200, _DASHBOARD_HEADERS, media_type=types[name])

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> Response:
        return page("index.html")

    @app.api_route("/dashboard/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def dashboard_file(name: str) -> Response:
        if name not in dashboard or name == "index.html":
            return _problem(404, "no such dashboard file")
        return page(name)

    docs = _docs_files()

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    def docs_index() -> Response:
        return page("index.html", docs, _DOCS_TYPES)

    @app.api_route("/docs/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def docs_file(name: str) -> Response:
        if name not in docs or name == "index.html":
            return _problem(404, "no such documentation file")
        return page(name, docs, _DOCS_TYPES)


def _probe_routes(app: FastAPI, service: Reader) -> None:
    # -- probes ---------------------------------------------------------------------------
    @app.get("/healthz", tags=["probes"], summary="the process is alive")
    async def healthz() -> dict[str, str]:  # on the event loop: never queued behind slow reads
        return {"status": "alive"}

    @app.head("/healthz", include_in_schema=False)
    async def healthz_head() -> Response:
        return Response(status_code=200)

    @app.get(
        "/readyz",
        tags=["probes"],
        summary="200 when every source is fresh and every account has state; else 503 with what is missing",
        responses={200: {"model": ReadyOut}, 503: {"model": ReadyOut}},
    )
    async def readyz() -> Response:
        missing = service.readiness()
        return _ok({"ready": not missing, "missing": missing}, 503 if missing else 200)


def _decision_routes(app: FastAPI, http: _Http, service: Decider) -> None:
    # -- decisions ------------------------------------------------------------------------
    @app.post(
        "/v1/evaluate",
        tags=["decisions"],
        summary="decide one order (same semantics as RiskSupervisor.evaluate)",
        **_guarded("client", {200: {"model": DecisionOut}, 413: {"model": Problem}, 422: {"model": Problem}}),
    )
    async def evaluate(request: Request) -> Response:
        # Normally answered by the ASGI fast path in front of FastAPI (same code, fewer layers).
        refused = http.guard(request, "client", body=True)
        if refused is not None:
            return refused
        try:
            raw = await _body(request)
        except _BodyError as error:
            return _problem(error.status, error.detail)
        status, payload = await evaluate_body(service, raw, http.keeper.scope(request.headers.getlist("authorization")))
        return Response(payload, status_code=status, media_type="application/json")

    @app.post(
        "/v1/evaluate/batch",
        tags=["decisions"],
        summary=f"decide a list of orders, in order (at most {MAX_BATCH})",
        **_guarded(
            "client",
            {200: {"model": list[DecisionOut]}, 413: {"model": Problem}, 422: {"model": Problem}},
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/OrderIn"}}
                        }
                    },
                }
            },
        ),
    )
    async def evaluate_batch(request: Request) -> Response:
        orders, refused = await http.body_of(request, "client")
        if refused is not None:
            return refused
        if not isinstance(orders, list):
            return _problem(422, f"body must be a JSON list of orders, got {type(orders).__name__}")
        if len(orders) > MAX_BATCH:
            return _problem(413, f"at most {MAX_BATCH} orders per batch, got {len(orders)}")
        # Decided in list order: each order's answer before the next is asked (a later one
        # must never be decided first because an earlier one waited for the gate).
        scope = http.keeper.scope(request.headers.getlist("authorization"))
        results = [await _decide(service, order, scope) for order in orders]
        return _ok([result_json(r) for r in results])


def _journal_routes(app: FastAPI, http: _Http, service: Reader) -> None:
    @app.get(
        "/v1/decisions",
        tags=["decisions"],
        summary="recent decisions from the journal, newest first",
        **_guarded("reader", {200: {"model": list[DecisionRow]}, 422: {"model": Problem}, 503: {"model": Problem}}),
    )
    def decisions(
        request: Request,
        account: str | None = None,
        code: str | None = None,
        decision: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> Response:
        refused = http.guard(request, "reader") or _query_refused(
            request, ("account", "code", "decision", "since", "limit")
        )
        if refused is not None:
            return refused
        if not 1 <= limit <= MAX_DECISIONS:
            return _problem(422, f"limit: must be 1..{MAX_DECISIONS}, got {limit}")
        if code is not None and code not in ReasonCode.__members__:
            return _problem(422, f"code: not a reason code: {shorten(code, 40)}")
        wanted: str | tuple[str, ...] | None = None
        if decision is not None:
            wanted = tuple(dict.fromkeys(decision.split(",")))
            wrong = [d for d in wanted if d not in ("allow", "block", "scale_down")]
            if wrong:
                why = "must be allow, block or scale_down (or several, comma separated)"
                return _problem(422, f"decision: {why}, got {shorten(wrong[0], 40)}")
        if account is not None and len(account) > MAX_NAME_LENGTH:
            return _problem(422, "account: too long")
        since_us = None
        if since is not None:
            try:
                since_us = to_us(parse_when(since, service.clock.now()))
            except (ValueError, OverflowError) as exc:
                return _problem(422, f"since: {exc}")
        if not service.config.journal.enabled:
            return _problem(503, "the journal is disabled (journal.enabled = false): no decisions are kept")
        try:
            rows = service.decisions(account=account, code=code, decision=wanted, since_us=since_us, limit=limit)
        except FileNotFoundError:
            rows = []
        except JournalUnreadableError as exc:
            return _problem(503, str(exc))
        return _ok(rows)

    @app.get(
        "/v1/decisions/rates",
        tags=["decisions"],
        summary="decisions per second by decision and reason code, last 15 minutes",
        **_guarded("reader", {200: {"model": RatesOut}}),
    )
    def decision_rates(request: Request) -> Response:
        refused = http.guard(request, "reader") or _query_refused(request, ())
        return refused if refused is not None else _ok(service.decision_rates())

    @app.get(
        "/v1/decisions/explain",
        tags=["decisions"],
        summary="one order's decisions (?order_id=): every input, the check that decided, the events before",
        **_guarded(
            "reader", {200: {"model": list[DecisionExplained]}, 422: {"model": Problem}, 503: {"model": Problem}}
        ),
    )
    async def explain(request: Request) -> Response:
        refused = http.guard(request, "reader") or _query_refused(request, ("order_id",))
        if refused is not None:
            return refused
        order_id = request.query_params.get("order_id", "")
        if not order_id or len(order_id) > 200:
            return _problem(422, "order_id: the order id is required (at most 200 characters)")
        try:
            return _ok(await run_in_threadpool(service.explain, order_id))
        except FileNotFoundError:
            return _ok([])
        except (JournalUnreadableError, sqlite3.Error, TypeError, ValueError) as exc:  # a damaged row: said
            return _problem(503, f"the journal cannot be read now: {type(exc).__name__}: {exc}")

    @app.get(
        "/v1/decisions/series",
        tags=["decisions"],
        summary="decisions per second over 15m, 1h or 24h (?range=), from the journal, with halts as marks",
        **_guarded("reader", {200: {"model": SeriesOut}, 422: {"model": Problem}, 503: {"model": Problem}}),
    )
    async def decision_series(request: Request) -> Response:
        refused = http.guard(request, "reader") or _query_refused(request, ("range",))
        if refused is not None:
            return refused
        span = request.query_params.get("range", "15m")
        if span not in SERIES_RANGES:
            return _problem(422, f"range: one of {', '.join(SERIES_RANGES)}, got {shorten(span, 20)!r}")
        try:
            return _ok(await run_in_threadpool(service.decision_series, span))  # a file read: off the event loop
        except FileNotFoundError:
            return _ok({"range": span, "times": [], "per_s": {}, "blocks_by_code": {}, "marks": [], "totals": {}})
        except (JournalUnreadableError, sqlite3.Error, TypeError, ValueError) as exc:  # a damaged row: said
            return _problem(503, f"the journal cannot be charted now: {type(exc).__name__}: {exc}")


def _report_routes(app: FastAPI, http: _Http, service: Reporter) -> None:
    # -- state from the execution side ------------------------------------------------------
    def not_permitted(request: Request, account: str) -> Response | None:
        """403 when the client's token is limited to other accounts ([api.clients.NAME] accounts)."""
        scope = http.keeper.scope(request.headers.getlist("authorization"))
        if scope is None or account in scope[1]:
            return None
        service.journal.event(
            service.clock.now(), "client_not_permitted", "api", account, client=scope[0], path=request.url.path[:200]
        )
        return _problem(
            403, f"client {scope[0]} may not report for account {account!r} ([api.clients.{scope[0]}] accounts)"
        )

    def unknown_account(name: object) -> Response | None:
        if not isinstance(name, str) or name not in service.config.accounts.accounts:
            known = ", ".join(sorted(service.config.accounts.accounts)) or "none"
            return _problem(404, f"account {shorten(name, 60)} is not configured (known: {known})")
        return None

    def fields_of(body: Any, cls: type[Report], what: str) -> dict[str, Any] | Response:
        if not isinstance(body, dict):
            return _problem(422, f"{what}: expected a JSON object, got {type(body).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in body if k not in known)
        if unknown:
            return _problem(422, f"{what}: unknown field {shorten(unknown[0], 40)} (known: {', '.join(sorted(known))})")
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in body]
        if missing:
            return _problem(422, f"{what}: field {missing[0]!r} is required")
        return body

    async def report_of(request: Request, cls: type[Report], what: str) -> dict[str, Any] | Response:
        """A fill's, outcome's or messages' fields from a client, of a configured account. Over
        HTTP the account is always required: ids are per account, so a report can
        only ever touch that account's own order."""
        body, refused = await http.body_of(request, "client")
        if refused is not None:
            return refused
        got = fields_of(body, cls, what)
        if isinstance(got, Response):
            return got
        if got.get("account") is None:
            return _problem(422, f"{what}: field 'account' is required")
        return unknown_account(got["account"]) or not_permitted(request, got["account"]) or got

    def tracker_answer(state: AccountState | None, what: str) -> Response:
        if state is None:
            if not service.tracker_alive():
                return _problem(503, "the account tracker is not running: nothing was recorded")
            return _problem(
                422,
                f"{what}: refused by the account tracker (too old, from the future, or on another exchange "
                "than the account's); the reason is in the log",
            )
        return _ok(_account_json(state))

    @app.post(
        "/v1/fills",
        tags=["state"],
        summary="a (partial) fill: positions move, the order's reservation is released",
        **_guarded("client", {200: {"model": AccountStateOut}, 404: {"model": Problem}, 422: {"model": Problem}}),
    )
    async def fills(request: Request) -> Response:
        got = await report_of(request, Fill, "fill")
        if isinstance(got, Response):
            return got
        try:
            fill = check_fill(Fill(**got), service.config.accounts.max_plausible_usd)
        except UpstreamError as exc:
            return _problem(422, f"fill: {exc}")
        return tracker_answer(await run_in_threadpool(service.report_fill, fill), "fill")

    @app.post(
        "/v1/outcomes",
        tags=["state"],
        summary="an order's outcome at the exchange: open keeps its reservation, an end releases it",
        status_code=202,
        **_guarded("client", {202: {"model": OutcomeOut}, 404: {"model": Problem}, 422: {"model": Problem}}),
    )
    async def outcomes(request: Request) -> Response:
        got = await report_of(request, OrderOutcome, "outcome")
        if isinstance(got, Response):
            return got
        try:
            outcome = check_outcome(OrderOutcome(**got))
        except UpstreamError as exc:
            return _problem(422, f"outcome: {exc}")
        service.report_order_outcome(outcome)  # read above: taken (posted to the gate, which never refuses it)
        return _ok({"delivered": True, "order_id": outcome.order_id, "status": outcome.status}, 202)

    @app.post(
        "/v1/messages",
        tags=["state"],
        summary="cancels or edits the client sent: they count toward gate.max_messages_per_s",
        status_code=202,
        **_guarded(
            "client",
            {202: {"model": MessagesOut}, 404: {"model": Problem}, 422: {"model": Problem}},
            "a client held to other accounts ([api.clients.NAME] accounts)",
        ),
    )
    async def messages(request: Request) -> Response:
        got = await report_of(request, _Messages, "messages")
        if isinstance(got, Response):
            return got
        account, kind, count = got["account"], got["kind"], got.get("count", 1)
        if kind not in ("cancel", "edit"):
            return _problem(422, f"messages: kind must be cancel or edit, got {shorten(kind)}")
        if type(count) is not int or not 1 <= count <= MAX_MESSAGES:
            return _problem(422, f"messages: count must be an integer in 1..{MAX_MESSAGES}, got {shorten(count)}")
        for _ in range(count):
            service.report_message(account)  # a known account's name: taken (posted to the gate)
        client = http.keeper.who(request.headers.getlist("authorization"), "client")
        service.journal.event(service.clock.now(), "messages_reported", "api", account, client=client, message=kind,
                              count=count)  # fmt: skip
        return _ok({"counted": count, "account": account, "kind": kind}, 202)

    @app.post(
        "/v1/accounts/{name}/snapshot",
        tags=["state"],
        summary="an account's equity and positions (the tracker adds the day/week baselines)",
        **_guarded(
            "client",
            {200: {"model": AccountStateOut}, 404: {"model": Problem}, 422: {"model": Problem}},
            "a client held to other accounts; an account that takes its snapshots from accounts.snapshot_url only",
        ),
    )
    async def snapshot(name: str, request: Request) -> Response:
        body, refused = await http.body_of(request, "client")
        if refused is not None:
            return refused
        missing_account = unknown_account(name) or not_permitted(request, name)
        if missing_account is not None:
            return missing_account
        if not service.config.accounts.takes_pushes(name):
            service.journal.event(
                service.clock.now(), "snapshot_push_refused", "api", name, client=request.client and request.client.host
            )
            return _problem(
                403,
                f"account {name!r} takes its snapshots from accounts.snapshot_url: a pushed one is refused "
                f"(accounts.{name}.takes_pushes = true accepts both)",
            )
        if not isinstance(body, dict):
            return _problem(422, f"snapshot: expected a JSON object, got {type(body).__name__}")
        if body.setdefault("account", name) != name:
            return _problem(422, f"snapshot: account {shorten(body['account'], 60)} is not the path's {name!r}")
        unknown = sorted(k for k in body if k not in ("account", "equity", "positions", "timestamp"))
        if unknown:
            return _problem(422, f"snapshot: unknown field {shorten(unknown[0], 40)}")
        try:
            parsed = parse_account_snapshot(body, service.config.accounts.max_plausible_usd)
        except UpstreamError as exc:
            return _problem(422, f"snapshot: {exc}")
        return tracker_answer(await run_in_threadpool(service.report_account_snapshot, parsed), "snapshot")


def _reader_routes(app: FastAPI, http: _Http, service: Reader) -> None:
    # -- what the gate knows ---------------------------------------------------------------
    @app.get(
        "/v1/state",
        tags=["state"],
        summary="sources, risk level, ESS, and each account against its limits",
        **_guarded("reader", {200: {"model": StateOut}}),
    )
    def state(request: Request) -> Response:
        refused = http.guard(request, "reader") or _query_refused(request, ())
        return refused if refused is not None else _ok(service.state())

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus text exposition",
        response_class=PlainTextResponse,  # documented as text; the answer is made below
        **_guarded("reader", {}),
    )
    def metrics(request: Request) -> Response:
        refused = http.guard(request, "reader")
        if refused is not None:
            return refused
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)


def _control_routes(app: FastAPI, http: _Http, service: Operator) -> None:
    # -- control ------------------------------------------------------------------------------
    @app.post(
        "/v1/reload",
        tags=["control"],
        summary="re-read the config file and swap it in between two evaluations; a bad file changes nothing",
        **_guarded("operator", {200: {"model": ReloadOut}, 400: {"model": Problems}}),
    )
    def reload(request: Request) -> Response:
        refused = http.guard(request, "operator")
        if refused is not None:
            return refused
        who = http.keeper.who(request.headers.getlist("authorization"), "operator") or "?"
        try:
            return _ok(service.reload(by=who))
        except ConfigError as exc:
            restart = all("restart required" in problem for problem in exc.problems)
            what = "restart required for these keys" if restart else "invalid configuration"
            return _problem(400, f"{exc.source}: {what}, nothing changed", problems=exc.problems)

    # -- emergency controls (an operator's token; journaled with who and why) ----------------
    def operator_of(request: Request) -> str:
        return http.keeper.who(request.headers.getlist("authorization"), "operator") or "?"

    async def controlled(action: Callable[[], Any], status: int = 200) -> Response:
        try:
            out = await run_in_threadpool(action)  # it writes and fsyncs a file: off the event loop
        except ControlError as exc:
            return _problem(exc.status, exc.detail)
        return _ok(asdict(out) if is_dataclass(out) and not isinstance(out, type) else out, status)

    async def control_body(
        request: Request, known: tuple[str, ...], empty_ok: bool = False
    ) -> tuple[dict[str, Any], Response | None]:
        return await _control_body(http, request, known, empty_ok)

    @app.post(
        "/v1/halt",
        tags=["control"],
        summary='halt every order (mode "all", the default) or every order that grows a position '
        '("reduce_only"); persisted; halts stack, one per operator and mode',
        **_guarded("operator", {200: {"model": HaltOut}, 422: {"model": Problem}}),
    )
    async def halt(request: Request) -> Response:
        body, refused = await control_body(request, ("reason", "mode"))
        if refused is not None:
            return refused
        by = operator_of(request)
        return await controlled(lambda: service.halt(body.get("reason"), by, body.get("mode", "all")))  # type: ignore[arg-type]

    @app.post(
        "/v1/resume",
        tags=["control"],
        summary="lift every operator halt (only those: an ESS or kill-switch halt stays); 409 when none holds",
        **_guarded("operator", {200: {"model": HaltOut}, 409: {"model": Problem}, 422: {"model": Problem}}),
    )
    async def resume(request: Request) -> Response:
        body, refused = await control_body(request, ("reason",), empty_ok=True)
        if refused is not None:
            return refused
        return await controlled(lambda: service.resume(operator_of(request), body.get("reason", "resumed")))

    @app.get("/v1/halt", tags=["control"], summary="the operator halt", **_guarded("reader", {200: {"model": HaltOut}}))
    def halt_status(request: Request) -> Response:
        refused = http.guard(request, "reader")
        return refused if refused is not None else _ok(service.controls.halt_status())

    @app.get(
        "/v1/overrides",
        tags=["control"],
        summary="overrides: proposed, active, ended",
        **_guarded("reader", {200: {"model": list[OverrideOut]}}),
    )
    def overrides(request: Request) -> Response:
        refused = http.guard(request, "reader")
        return refused if refused is not None else _ok([asdict(r) for r in service.overrides()])

    @app.post(
        "/v1/overrides",
        tags=["control"],
        summary="propose an override (account, reason, ttl_s); another operator approves it",
        status_code=201,
        **_guarded("operator", {201: {"model": OverrideOut}, 404: {"model": Problem}, 422: {"model": Problem}}),
    )
    async def propose(request: Request) -> Response:
        body, refused = await control_body(request, ("account", "reason", "ttl_s"))
        if refused is not None:
            return refused
        by = operator_of(request)
        return await controlled(
            lambda: service.propose_override(body.get("account"), body.get("reason"), body.get("ttl_s"), by),  # type: ignore[arg-type]
            201,
        )

    @app.post(
        "/v1/overrides/{override_id}/approve",
        tags=["control"],
        summary="approve another operator's proposal: it is active for its ttl_s",
        **_guarded(
            "operator",
            {200: {"model": OverrideOut}, 404: {"model": Problem}, 409: {"model": Problem}},
            "the operator who proposed it: another must approve it",
        ),
    )
    async def approve(override_id: str, request: Request) -> Response:
        refused = http.guard(request, "operator")
        if refused is not None:
            return refused
        return await controlled(lambda: service.approve_override(override_id, operator_of(request)))

    @app.delete(
        "/v1/overrides/{override_id}",
        tags=["control"],
        summary="revoke a proposal or an active override",
        **_guarded("operator", {200: {"model": OverrideOut}, 404: {"model": Problem}, 409: {"model": Problem}}),
    )
    async def revoke(override_id: str, request: Request) -> Response:
        refused = http.guard(request, "operator")
        if refused is not None:
            return refused
        return await controlled(lambda: service.revoke_override(override_id, operator_of(request)))

    # -- lockouts -----------------------------------------------------------------------------
    @app.get(
        "/v1/lockouts",
        tags=["control"],
        summary="the locked accounts: each lockout's code, cause, since, until and what lifts it",
        **_guarded("reader", {200: {"model": dict[str, list[LockoutOut]]}}),
    )
    async def lockouts(request: Request) -> Response:
        refused = http.guard(request, "reader")
        if refused is not None:
            return refused
        return _ok(await run_in_threadpool(service.lockouts))

    @app.post(
        "/v1/lockouts/{account}/clear",
        tags=["control"],
        summary="lift an account's cooldown (journaled; a second operator confirms it if the config says so)",
        **_guarded(
            "operator",
            {
                200: {"model": LockoutClearOut},
                404: {"model": Problem},
                409: {"model": Problem},
                422: {"model": Problem},
            },
            "the operator who asked for it, when a second operator must confirm it",
        ),
    )
    async def clear_lockout(account: str, request: Request) -> Response:
        body, refused = await control_body(request, ("reason",))
        if refused is not None:
            return refused
        by = operator_of(request)
        return await controlled(lambda: service.clear_lockout(account, body.get("reason"), by))  # type: ignore[arg-type]


async def _control_body(
    http: _Http, request: Request, known: tuple[str, ...], empty_ok: bool = False
) -> tuple[dict[str, Any], Response | None]:
    """An operator's JSON object body of `known` fields, or the refusal that answers it."""
    refused = http.guard(request, "operator", body=True)
    if refused is not None:
        return {}, refused
    try:
        raw = await _body(request)
        body = {} if empty_ok and not raw.strip() else _parse(raw)
    except _BodyError as exc:
        return {}, _problem(exc.status, exc.detail)
    if not isinstance(body, dict):
        return {}, _problem(422, f"body: expected a JSON object, got {type(body).__name__}")
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        return {}, _problem(422, f"unknown field {shorten(unknown[0], 40)} (known: {', '.join(known)})")
    return body, None


def _shadow_routes(app: FastAPI, http: _Http, service: ShadowKeeper) -> None:
    # -- the shadow config (docs/replay.md) -----------------------------------------------------
    @app.get(
        "/v1/shadow",
        tags=["state"],
        summary="the shadow config: its candidate, orders decided again, disagreements and the latest ones",
        **_guarded("reader", {200: {"model": ShadowOut}}),
    )
    async def shadow(request: Request) -> Response:
        refused = http.guard(request, "reader") or _query_refused(request, ())
        return refused if refused is not None else _ok(service.shadow())

    @app.post(
        "/v1/shadow/promote",
        tags=["control"],
        summary="make the shadow's candidate the live config (journaled; the old file is kept beside it)",
        **_guarded("operator", {200: {"model": ShadowPromoteOut}, 409: {"model": Problem}, 422: {"model": Problem}}),
    )
    async def promote(request: Request) -> Response:
        body, refused = await _control_body(http, request, ("reason",))
        if refused is not None:
            return refused
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            return _problem(422, "reason: required, 1-500 characters")
        by = http.keeper.who(request.headers.getlist("authorization"), "operator") or "?"
        try:
            out = await run_in_threadpool(service.promote_shadow, by, reason)
        except ControlError as exc:
            return _problem(exc.status, exc.detail)
        return _ok(out)


def _document_bodies(app: FastAPI) -> None:
    """Bodies are read by hand (see the module doc); the schema still names them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for (path, method), model in BODIES.items():
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
                schema["paths"][path][method]["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
                }
            # The scheme each operation that takes a token names as its `security` (`_guarded`).
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "[api.operators] / [api.clients] token"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
