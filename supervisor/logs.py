"""structlog set-up: JSON lines in production, a console renderer for people.

structlog's own events and the standard library's records (pykka's) share one
writer: each line goes out in one write under one lock, so lines from
different threads never interleave (a JSON reader of the stream sees whole
lines only).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "get_logger", "standalone_json_logger"]

_write_lock = threading.Lock()


class _LineWriter:
    """A structlog logger: one whole line per event, under the shared lock."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        with _write_lock:
            self._stream.write(message + "\n")
            self._stream.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class _LineHandler(logging.StreamHandler[TextIO]):
    """The standard library's records, written as whole lines under the same lock."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        with _write_lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def configure_logging(fmt: str = "json", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Route structlog and the standard library (pykka's records) through one renderer."""
    out = stream or sys.stdout
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _LineWriter(out),
        cache_logger_on_first_use=True,
    )
    handler = _LineHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # a traceback as text, not a repr of a tuple
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: two lines a second per polled source.
    # The sources log what matters (source_failed / source_recovered) themselves.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def standalone_json_logger(stream: TextIO | None = None) -> Any:
    """A JSON-lines logger of its own, leaving the global configuration alone
    (for one-shot commands that may run inside another program, e.g. a test)."""
    return structlog.wrap_logger(
        _LineWriter(stream or sys.stdout),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )
