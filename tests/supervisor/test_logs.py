from __future__ import annotations

import io
import json
import logging

import structlog

from supervisor.logs import configure_logging


def test_structlog_and_pykka_records_render_as_json_lines():
    buf = io.StringIO()
    configure_logging("json", stream=buf)
    structlog.get_logger("riskgate.test").warning("order_blocked", reason_code="ESS_HALT_ACTIVE", account="main")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        logging.getLogger("pykka").exception("Unhandled exception in GateActor")
    logging.getLogger("pykka").debug("below the level: not shown")
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["order_blocked", "Unhandled exception in GateActor"]
    assert events[0]["reason_code"] == "ESS_HALT_ACTIVE" and events[0]["level"] == "warning"
    assert events[1]["logger"] == "pykka" and "ZeroDivisionError: boom" in events[1]["exception"]
    assert all(e["timestamp"].endswith("Z") for e in events)


def test_console_format_is_for_people():
    buf = io.StringIO()
    configure_logging("console", stream=buf)
    structlog.get_logger("x").info("actor_health", actor="gate", alive=True)
    line = buf.getvalue()
    assert "actor_health" in line and "actor=gate" in line and not line.startswith("{")
