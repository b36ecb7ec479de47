"""Bounded JSON fetches for the source actors, and log-once failure tracking.

`fetch_json` turns every way an HTTP fetch can go wrong into a `FetchError`
with a short, stable `kind` (timeout, connect, http_404, http_5xx, too_large,
not_json, ...), so an actor can log a cause once instead of once per poll.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from supervisor.logs import get_logger

__all__ = ["MAX_BODY_BYTES", "FailureLog", "FetchError", "fetch_json"]

MAX_BODY_BYTES = 1024 * 1024


class FetchError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def fetch_json(client: httpx.Client, url: str, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """GET `url` and decode its JSON body. Raises `FetchError`, never anything else."""
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                status = response.status_code
                kind = "http_404" if status == 404 else "http_5xx" if status >= 500 else f"http_{status}"
                raise FetchError(kind, f"HTTP {status} from {url}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError("too_large", f"body of {declared} bytes > {max_bytes}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("too_large", f"body over {max_bytes} bytes")
    except FetchError:
        raise
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"{type(exc).__name__} after the configured timeout: {url}") from exc
    except httpx.ConnectError as exc:
        raise FetchError("connect", f"cannot connect to {url}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise FetchError("transport", f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a fetch must fail closed, not crash the actor
        raise FetchError("error", f"{type(exc).__name__}: {exc}") from exc
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FetchError("not_json", f"body is not JSON ({len(body)} bytes)") from exc


class FailureLog:
    """Logs a source's failure once per cause, and its recovery once."""

    def __init__(self, logger_name: str, source: str) -> None:
        self._log = get_logger(logger_name)
        self._source = source
        self._cause: str | None = None

    @property
    def cause(self) -> str | None:
        return self._cause

    def failed(self, cause: str, detail: str, **fields: Any) -> None:
        if cause != self._cause:
            self._cause = cause
            self._log.warning("source_failed", source=self._source, cause=cause, detail=detail, **fields)

    def succeeded(self, **fields: Any) -> None:
        if self._cause is not None:
            self._log.info("source_recovered", source=self._source, previous_cause=self._cause, **fields)
            self._cause = None
