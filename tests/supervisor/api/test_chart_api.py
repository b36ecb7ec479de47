"""The dashboard's data from the journal: decisions per second over 15 minutes, an hour or a day
(a restart keeps them), with halts as marks, on the gate's own clock; one order explained; the
chart library served from the package, pinned."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from supervisor.api.app import DASHBOARD_SHA256
from tests.helpers import order
from tests.supervisor.api.conftest import ALICE, BOB
from tests.supervisor.api.test_controls import call, feed, serving


@pytest.fixture
def sup(clock, tmp_path):
    with serving(clock, tmp_path) as s:
        yield s


def test_the_series_counts_what_the_journal_holds_and_marks_the_halts(sup, clock):
    for n in range(3):
        sup.evaluate(order(order_id=f"ok{n}", quantity=0.5))
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "drill"})
    for n in range(2):
        sup.evaluate(order(order_id=f"no{n}", quantity=0.5))
    clock.advance(20)  # a later bucket: the resume
    feed(sup)
    call(sup, "POST", "/v1/resume", BOB, {"reason": "drill over"})
    sup.flush_journal()
    doc = call(sup, "GET", "/v1/decisions/series?range=15m", None).json()
    assert (doc["range"], doc["bucket_s"], len(doc["times"])) == ("15m", 10, 90)
    assert doc["totals"]["allow"] == 3 and doc["totals"]["block"] == 2
    assert doc["blocks_by_code"].keys() == {"ESS_HALT_ACTIVE"}
    assert sum(doc["per_s"]["block"]) * 10 == pytest.approx(2)
    assert doc["times"][-1] <= clock.now().timestamp() < doc["times"][-1] + 10  # on the gate's clock
    kinds = [(m["kind"], m["text"]) for m in doc["marks"]]  # once each: not again as the ESS change it made
    assert kinds == [("halt", "operator halt by alice: drill"), ("clear", "resumed by bob: drill over")]
    day = call(sup, "GET", "/v1/decisions/series?range=24h", None).json()
    assert (day["bucket_s"], day["totals"]["allow"]) == (600, 3)


def test_a_range_it_does_not_know_is_refused_naming_it(sup):
    for query in ("range=2h", "range=", "range=15m&range=1h", "span=15m"):
        r = call(sup, "GET", f"/v1/decisions/series?{query}", None)
        assert r.status_code == 422 and ("range" in r.json()["detail"] or "span" in r.json()["detail"]), query


def test_an_order_is_explained_with_the_check_that_decided_it(sup):
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "drill"})
    sup.evaluate(order(order_id="why-1", quantity=0.5))
    sup.flush_journal()
    (found,) = call(sup, "GET", "/v1/decisions/explain?order_id=why-1", None).json()
    assert found["reason_code"] == "ESS_HALT_ACTIVE" and found["decided_by"] == "2. no ESS halt"
    assert any(e["kind"] == "operator_halt" for e in found["events_in_the_minute_before"])
    assert call(sup, "GET", "/v1/decisions/explain?order_id=nothing", None).json() == []
    assert call(sup, "GET", "/v1/decisions/explain", None).status_code == 422


def test_the_chart_library_is_served_from_the_package_and_is_the_pinned_release(sup):
    folder = resources.files("supervisor.api").joinpath("dashboard")
    for name, digest in DASHBOARD_SHA256.items():
        assert hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() == digest, name
        served = call(sup, "GET", f"/dashboard/{name}", None)
        assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == digest
        assert "script-src 'self'" in served.headers["content-security-policy"]
    assert "MIT License" in folder.joinpath("uPlot.LICENSE").read_text()
    assert call(sup, "GET", "/dashboard/VENDORED.md", None).status_code == 404  # only what the page loads


def test_a_series_query_past_its_time_budget_is_cut_not_waited_for(sup):
    import sqlite3

    from supervisor.journal.store import JOURNAL_NAME, JournalReader

    for n in range(300):
        sup.evaluate(order(order_id=f"many{n}", quantity=0.1))
    sup.flush_journal()
    reader = JournalReader(sup.config.state.dir / JOURNAL_NAME)
    try:
        with pytest.raises(sqlite3.OperationalError, match="interrupt"):
            reader.series(0, 2**62, 1, budget_s=-1.0)  # already past: the first check cuts it
        assert reader.series(0, 2**62, 10**12)["counts"]  # and the reader still answers after
    finally:
        reader.close()
