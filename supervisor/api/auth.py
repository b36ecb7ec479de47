"""Who may call what: bearer tokens checked against `[api.operators]` and `[api.clients]`.

- operators control the gate (reload; halt, resume and overrides later);
- clients are execution services: orders, fills, outcomes, snapshots (unless
  `api.execution_access = "open"`);
- reads (`/v1/state`, `/v1/decisions`, `/metrics`) take either, when
  `api.read_access = "token"`.

A token is compared by its SHA-256, in constant time, against every
configured one. A request with more than one Authorization header is refused
(which one would count?). Refusals are journaled as `auth_failed`, at most
`_JOURNALED_PER_S` a second (a flood of bad tokens must not fill the journal's
queue and so block orders); the rest are counted in the next one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from supervisor.api.service import Basics
from supervisor.config import ApiConfig, OperatorConfig

__all__ = ["Gatekeeper", "Role", "is_json"]

Role = Literal["operator", "client", "reader"]

_JOURNALED_PER_S = 20


def is_json(content_type: str | None) -> bool:
    """A JSON body must say so: browsers cannot send `application/json` across
    origins without a CORS preflight, which this API never grants."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class Gatekeeper:
    def __init__(self, service: Basics) -> None:
        self._service = service
        self._window = -1
        self._journaled = 0
        self._suppressed = 0
        self._kept: tuple[ApiConfig, dict[Role, tuple[OperatorConfig, ...]]] | None = None

    def who(self, headers: Sequence[str], role: Role) -> str | None:
        """The name whose token the Authorization headers carry, if it may act as `role`."""
        if len(headers) != 1:
            return None
        scheme, _, token = headers[0].partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 512:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        found = None
        for principal in self._principals(role):  # every one compared: the time does not tell which matched
            if hmac.compare_digest(principal.token_sha256, digest):
                found = principal.name
        return found

    def _principals(self, role: Role) -> tuple[OperatorConfig, ...]:
        """Who may act as `role` under the config now (kept per config: asked on every order)."""
        api = self._service.config.api
        kept = self._kept
        if kept is None or kept[0] is not api:
            operators, clients = tuple(api.operators.values()), tuple(api.clients.values())
            kept = self._kept = (api, {"operator": operators, "client": clients, "reader": operators + clients})
        return kept[1][role]

    def scope(self, headers: Sequence[str]) -> tuple[str, frozenset[str]] | None:
        """(client name, its accounts) when the client whose token the headers carry
        is limited to some accounts; None when it may act for every account (or
        execution is open to anyone without a token)."""
        api = self._service.config.api
        if not api.scoped:
            return None
        name = self.who(headers, "client")
        principal = api.clients.get(name) if name is not None else None
        if principal is None or principal.accounts is None:
            return None
        return principal.name, principal.accounts

    def refused(
        self, headers: Sequence[str], method: str, path: str, client: str | None, known: str | None = None
    ) -> None:
        """Journal a refusal; `known`: the name whose valid token was used for another role."""
        why = "no bearer token" if not headers else "unknown token" if known is None else f"{known}'s token: wrong role"
        if len(headers) > 1:
            why = "more than one Authorization header"
        now = self._service.clock.monotonic()
        if int(now) != self._window:
            self._window, self._journaled = int(now), 0
        if self._journaled >= _JOURNALED_PER_S:
            self._suppressed += 1
            return
        self._journaled += 1
        suppressed, self._suppressed = self._suppressed, 0
        self._service.journal.event(
            self._service.clock.now(),
            "auth_failed",
            "api",
            method=method,
            path=path[:200],
            why=why,
            client=client,
            not_journaled_before=suppressed or None,
        )
