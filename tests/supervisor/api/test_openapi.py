"""The OpenAPI schema says what the API does: every operation that takes a token names the bearer
scheme and the 401 and 403 it answers, and each typed answer has the keys a real one has."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from supervisor import AccountSnapshot, Position, RiskSupervisor
from supervisor.clock import FakeClock
from tests.helpers import make_config, order, signal
from tests.supervisor.api.conftest import ALICE, BOB, DESK, clients, operators
from tests.supervisor.api.test_lockouts import T, fresh
from tests.supervisor.api.test_lockouts import config as lockouts_config

PROBES = ("/healthz", "/readyz")
BEARER = {"bearer": []}


def _url(path: str) -> str:
    return path.replace("{name}", "main").replace("{account}", "main").replace("{override_id}", "nope")


def _ask(client: httpx.Client, method: str, path: str, token: str | None) -> int:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = "{}" if method in ("post", "put") else None
    return client.request(method, _url(path), headers=headers, content=content).status_code


def _answers(clock, **api) -> Iterator[tuple[str, str, dict[str, Any], dict[str | None, int]]]:
    """Each operation of the schema with what it answers without a token, with an execution
    client's and with an operator's (a body of {}: never enough to halt, override or clear)."""
    config = make_config(api={"operators": operators(), "clients": clients(), **api})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        url = sup.serve_api(port=0).url
        with httpx.Client(base_url=url, timeout=10.0) as client:  # one connection: not one per request
            schema = client.get("/openapi.json").json()
            for path, operations in schema["paths"].items():
                for method, operation in operations.items():
                    got = {token: _ask(client, method, path, token) for token in (None, DESK, ALICE)}
                    yield path, method, operation, got


def test_every_operation_that_takes_a_token_names_the_bearer_scheme_its_401_and_its_403(clock):
    seen = 0
    for path, method, operation, got in _answers(clock, read_access="token", execution_access="token"):
        where = f"{method.upper()} {path}"
        if path in PROBES:
            assert got[None] != 401 and "security" not in operation, where
            continue
        seen += 1
        assert got[None] == 401, where  # every other operation takes a token here
        assert BEARER in operation.get("security", []), where
        assert "401" in operation["responses"], where
        if 403 in (got[DESK], got[ALICE]):  # a valid token of the wrong role
            assert "403" in operation["responses"], where
    assert seen >= 20


def test_the_token_is_required_where_no_setting_opens_the_operation_and_optional_elsewhere(clock):
    for path, method, operation, got in _answers(clock, read_access="open", execution_access="open"):
        where = f"{method.upper()} {path}"
        if path in PROBES:
            continue
        required = got[None] == 401  # an operator's, whatever the config says
        assert operation["security"] == ([BEARER] if required else [BEARER, {}]), where


# -- typed answers: the documented keys are the real ones --------------------------------------------


def _untyped(schema: dict[str, Any]) -> bool:
    """Any JSON at all: `{}`, an object of anything, or an array of such."""
    if schema.get("type") == "array":
        return _untyped(schema.get("items", {}))
    if schema.get("type") == "object":
        return "properties" not in schema and schema.get("additionalProperties", True) is True
    return not schema


def test_every_json_answer_is_documented_by_a_model(http):
    schema = http.get("/openapi.json").json()
    untyped = [
        f"{method.upper()} {path} {code}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for code, response in operation["responses"].items()
        if _untyped(response.get("content", {}).get("application/json", {}).get("schema", {"type": "string"}))
    ]
    assert not untyped, untyped


def _conforms(value: Any, schema: dict[str, Any], parts: dict[str, Any], where: str) -> list[str]:
    """What in `value` the JSON schema does not say: keys it does not declare (unless it allows
    any), required keys missing, values of another type."""
    if "$ref" in schema:
        schema = parts[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        tried = [_conforms(value, branch, parts, where) for branch in schema["anyOf"]]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not one of {schema['enum']}"]
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        declared, rest = schema.get("properties", {}), schema.get("additionalProperties")
        problems = [f"{where}.{k}: not declared" for k in value if k not in declared and not rest]
        problems += [f"{where}.{k}: declared required, absent" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            sub = declared.get(key, rest if isinstance(rest, dict) else {})
            problems += _conforms(item, sub, parts, f"{where}.{key}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not an array"]
        return [
            p for i, item in enumerate(value) for p in _conforms(item, schema.get("items", {}), parts, f"{where}[{i}]")
        ]
    types = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,), "null": (type(None),)}
    if kind in types and (
        not isinstance(value, types[kind]) or (kind in ("number", "integer") and isinstance(value, bool))
    ):
        return [f"{where}: {value!r} is not a {kind}"]
    return []


@pytest.fixture
def served(clock):
    """A supervisor whose answers hold something of every kind: decisions, a loss lockout, a
    reduce-only halt, overrides proposed, active and ended, prices, alerts, a journal with marks."""
    config = make_config(
        api={"operators": operators(), "clients": clients()},
        prices={"url": "http://127.0.0.1:9"},
        alerts={"enabled": True},
    )
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        _feed(sup)
        sup.evaluate(order(order_id="o-1"))  # no price yet: blocked
        clock.advance(6.0)  # a decision-rate sample
        _feed(sup)
        sup.evaluate(order(order_id="o-2", quantity=0.5))
        sup.report_account_snapshot(AccountSnapshot("tiny", 9_900.0))  # -1 % of a -0.5 % daily limit: locked
        sup.halt("thin book", "alice", mode="reduce_only")
        record = sup.propose_override("main", "unwind", 120.0, "alice")
        sup.approve_override(record.id, "bob")
        sup.propose_override("bold", "later", 60.0, "bob")
        ended = sup.propose_override("tiny", "never mind", 60.0, "bob")
        sup.revoke_override(ended.id, "bob")
        sup.flush_journal()
        yield sup


def _feed(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, (Position("SOLUSDT", "binance", 3.0, 100.0),)))
    sup.report_account_snapshot(AccountSnapshot("bold", 10_000.0))
    sup.report_account_snapshot(AccountSnapshot("tiny", 10_000.0))


def _answer_schema(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    responses = schema["paths"][path][method]["responses"]
    ok = next(code for code in ("200", "201", "202") if code in responses)
    return responses[ok]["content"]["application/json"]["schema"]


def _check(sup: RiskSupervisor, method: str, path: str, token: str | None = None, body: object = None, **params) -> Any:
    url = sup.api_server.url
    schema = httpx.get(url + "/openapi.json").json()
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = None if body is None else json.dumps(body)
    r = httpx.request(method, url + _url(path).replace("nope", str(params.pop("override_id", "nope"))),
                      headers=headers, content=content, params=params, timeout=10.0)  # fmt: skip
    assert r.status_code in (200, 201, 202), (path, r.status_code, r.text)
    answer = r.json()
    problems = _conforms(answer, _answer_schema(schema, path, method.lower()), schema["components"]["schemas"], path)
    assert not problems, problems
    return answer


def test_the_state_document_has_the_documented_keys(served):
    state = _check(served, "GET", "/v1/state")
    assert state["banner"]["state"] == "REDUCE-ONLY" and state["accounts"]["tiny"]["lockouts"]
    assert state["overrides"]["active"] and state["overrides"]["proposed"] and state["prices"]
    assert state["alerts"]["enabled"] and state["operator_halt"]["halts"]
    assert state["sources"]["ess"]["readings"] and state["accounts"]["main"]["override"]


def test_the_decisions_answers_have_the_documented_keys(served):
    rows = _check(served, "GET", "/v1/decisions")
    assert [r["order_id"] for r in rows] == ["o-2", "o-1"]
    explained = _check(served, "GET", "/v1/decisions/explain", order_id="o-1")
    assert explained[0]["events_in_the_minute_before"]
    assert _check(served, "GET", "/v1/decisions/rates")["points"]
    series = _check(served, "GET", "/v1/decisions/series", range="15m")
    assert series["marks"] and series["totals"]["block"] == 2 and series["blocks_by_code"]


def test_the_overrides_answers_have_the_documented_keys(served):
    listed = _check(served, "GET", "/v1/overrides")
    assert {r["state"] for r in listed} == {"active", "proposed", "revoked"}
    made = _check(served, "POST", "/v1/overrides", ALICE, {"account": "bold", "reason": "hedge", "ttl_s": 30})
    approved = _check(served, "POST", "/v1/overrides/{override_id}/approve", BOB, override_id=made["id"])
    assert approved["state"] == "active"
    revoked = _check(served, "DELETE", "/v1/overrides/{override_id}", ALICE, override_id=made["id"])
    assert revoked["state"] == "revoked"


def test_the_reports_and_controls_answers_have_the_documented_keys(served):
    fill = {"account": "main", "exchange": "binance", "symbol": "SOLUSDT", "side": "sell", "quantity": 1.0,
            "price": 100.0, "order_id": "o-1"}  # fmt: skip
    assert _check(served, "POST", "/v1/fills", DESK, fill)["positions"]
    _check(served, "POST", "/v1/outcomes", DESK, {"order_id": "o-2", "status": "cancelled", "account": "main"})
    _check(served, "POST", "/v1/messages", DESK, {"account": "main", "kind": "cancel"})
    _check(served, "POST", "/v1/accounts/{name}/snapshot", DESK, {"equity": 10_000.0})
    _check(served, "POST", "/v1/evaluate", DESK, order(order_id="o-3"))
    _check(served, "POST", "/v1/evaluate/batch", DESK, [order(order_id="o-4")])
    assert _check(served, "GET", "/v1/lockouts")["tiny"]
    _check(served, "GET", "/v1/halt")
    _check(served, "POST", "/v1/halt", BOB, {"reason": "outage"})
    assert len(_check(served, "POST", "/v1/resume", ALICE, {"reason": "clear"})["lifted"]) == 2
    _check(served, "GET", "/v1/halt")  # after a resume: who lifted what


def test_the_series_before_the_journal_has_a_file_has_the_documented_keys(clock):
    config = make_config(api={"operators": operators(), "clients": clients()}, journal={"enabled": False})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        assert _check(sup, "GET", "/v1/decisions/series")["times"] == []


def test_the_lockout_clear_answers_have_the_documented_keys(tmp_path):
    clock = FakeClock(start=T)
    with RiskSupervisor(lockouts_config(tmp_path, lockout_clear_two_person=True), clock=clock,
                        poll_upstreams=False) as sup:  # fmt: skip
        sup.serve_api(port=0)
        fresh(sup, 10_000.0)
        fresh(sup, 9_790.0)  # the day's loss limit trips: a cooldown follows
        clock.advance(600)
        fresh(sup, 9_900.0)
        asked = _check(sup, "POST", "/v1/lockouts/{account}/clear", ALICE, {"reason": "reviewed"})
        assert asked["state"] == "awaiting_second_operator"
        assert _check(sup, "POST", "/v1/lockouts/{account}/clear", BOB, {"reason": "agreed"})["state"] == "cleared"
