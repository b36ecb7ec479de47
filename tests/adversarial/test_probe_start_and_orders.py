"""Found by a fourth probe: two starts at once released the state folder's lock (a second
riskgate could then share the journal); a start while started stopped the running system;
a part that failed half-started left its threads running; an object claiming to be an
OrderRequest (or a subclass of one) was read through its own code; a hostile BaseException
escaped validate_order, which promises never to raise."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from supervisor import OrderRequest, RiskSupervisor
from supervisor.core.orders import validate_order
from supervisor.errors import RiskgateError
from tests.helpers import feed, make_config, order

CFG = make_config()


def test_two_starts_at_once_start_once_and_keep_the_folder_locked(clock):
    s = RiskSupervisor(make_config(), clock=clock, poll_upstreams=False)
    go = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        go.wait(5)
        try:
            s.start()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(20)
    try:
        assert errors == []
        with pytest.raises(RiskgateError):  # the folder is still ours: a second riskgate may not start
            RiskSupervisor(make_config(), clock=clock, poll_upstreams=False).start()
        feed(s)
        assert s.evaluate(order()).decision == "allow"
    finally:
        s.stop()


def test_a_start_while_started_changes_nothing(clock):
    s = RiskSupervisor(make_config(), clock=clock, poll_upstreams=False).start()
    try:
        assert s._system.start() is False
        feed(s)
        assert s.evaluate(order()).decision == "allow"
    finally:
        s.stop()


def test_a_part_that_fails_half_started_is_stopped_too(clock, monkeypatch):
    from supervisor.ops import alerting

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the alerts actor cannot start")

    monkeypatch.setattr(alerting.AlertsActor, "start", fail)  # after the webhook senders started
    hooks = {"a": {"url": "http://127.0.0.1:9/a"}, "b": {"url": "http://127.0.0.1:9/b"}}
    s = RiskSupervisor(make_config(alerts={"enabled": True, "webhooks": hooks}), clock=clock, poll_upstreams=False)
    with pytest.raises(RuntimeError):
        s.start()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("webhook-")]


def test_an_object_claiming_to_be_an_order_is_refused_unread():
    calls: list[str] = []

    class Fake:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            calls.append("__class__")
            return OrderRequest

        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return order().get(name)

    assert isinstance(validate_order(Fake(), CFG), str)
    assert calls == []


def test_a_subclass_of_order_request_is_refused_unread():
    calls: list[str] = []

    class Sub(OrderRequest):
        __slots__ = ()

        @property  # type: ignore[misc]
        def side(self) -> str:
            calls.append("side")
            return "sell"

    o = object.__new__(Sub)
    values = {**order(), "reduce_only": False, "stop_price": None, "order_id": None, "reference_price": None}
    for name in OrderRequest.__slots__:
        OrderRequest.__dict__[name].__set__(o, values[name])
    assert isinstance(validate_order(o, CFG), str)
    assert calls == []


class _Hostile(BaseException):
    pass


class _Raising(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise _Hostile

    def __iter__(self) -> Iterator[str]:
        raise _Hostile

    def __len__(self) -> int:
        return 7


def test_a_hostile_base_exception_is_an_answer_not_a_raise(sup_plain):
    reason = validate_order(_Raising(), CFG)
    assert isinstance(reason, str) and "_Hostile" in reason
    feed(sup_plain)
    assert sup_plain.evaluate(_Raising()).reason_code.name == "INVALID_ORDER"
