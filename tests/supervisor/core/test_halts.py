"""Who halts, in words: each ESS source named once, the operator halt's reading read back."""

from __future__ import annotations

from supervisor.core.halts import halt_cause, halt_source, operator_halt_detail, operator_halts


def test_each_source_is_named_for_people_with_its_reason_once():
    assert halt_source("http") == "ESS (http)" and halt_source("kill_switch_file") == "kill switch file"
    assert halt_cause("http", "drill") == "ESS (http): drill"
    assert halt_cause("kill_switch_file", "kill switch /srv/KILL_SWITCH: desk halt") == (
        "kill switch file /srv/KILL_SWITCH: desk halt"
    )
    assert halt_cause("kill_switch_file", "kill switch /srv/KILL_SWITCH") == "kill switch file /srv/KILL_SWITCH"
    both = "; ".join(
        (operator_halt_detail("alice", "2026-12-05T01:34:27.358806Z", "drill; again"),
         operator_halt_detail("bob", "2026-12-05T01:40:00Z", "venue down"))
    )  # fmt: skip
    assert operator_halts(both) == [
        ("alice", "2026-12-05T01:34:27.358806Z", "drill; again"),
        ("bob", "2026-12-05T01:40:00Z", "venue down"),
    ]
    assert halt_cause("operator_halt", both) == "operator alice: drill; again; operator bob: venue down"
    assert halt_cause("operator_halt", "something else") == "operator: something else"  # never dropped
