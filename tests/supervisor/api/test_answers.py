"""The API's answer written straight (`result_bytes`) is, byte for byte, the general JSON of
`result_json`, and the body reader's kept decoder reads what `json.loads` reads."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.api.answers import dumps, result_bytes, result_json
from supervisor.api.app import read_json
from supervisor.core.evaluate import result_of
from supervisor.core.reasons import ReasonCode as RC

WALL = datetime(2026, 12, 5, 11, 0, 0, 123456, tzinfo=UTC)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_text = st.text(max_size=30)  # any code point: quotes, backslashes, controls, surrogates, emoji


@settings(max_examples=300, deadline=None)
@given(
    decision=st.sampled_from(["allow", "block", "scale_down"]),
    reason=_text,
    code=st.sampled_from(list(RC)),
    factor=_finite,
    quantity=_finite,
    level=st.sampled_from(["INFO", "WARNING", "CRITICAL", "UNKNOWN"]),
    active=st.booleans(),
    offset=st.integers(-12 * 60, 14 * 60),
    order_id=_text,
    ages=st.dictionaries(_text, st.none() | _finite, max_size=4),
)
def test_result_bytes_are_the_general_json_byte_for_byte(
    decision, reason, code, factor, quantity, level, active, offset, order_id, ages
):
    wall = WALL.astimezone(timezone(timedelta(minutes=offset)))
    r = result_of(decision, reason, code, factor, quantity, level, active, wall, order_id, ages)
    fast = result_bytes(r)
    assert fast == dumps(result_json(r))
    assert json.loads(fast)["timestamp"] == "2026-12-05T11:00:00.123456Z"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_refused_as_the_general_way_refuses_it(bad):
    for fields in ({"factor": bad}, {"quantity": bad}, {"ages": {"ess": bad}}):
        args = {"factor": 1.0, "quantity": 0.5, "ages": {"ess": 0.1}, **fields}
        r = result_of("allow", "ok", RC.ALL_CHECKS_PASSED, args["factor"], args["quantity"], "INFO", False, WALL,
                      "o-1", args["ages"])  # fmt: skip
        with pytest.raises(ValueError, match="not JSON compliant"):
            dumps(result_json(r))
        with pytest.raises(ValueError, match="not JSON compliant"):
            result_bytes(r)


def test_values_of_other_types_go_the_general_way():
    # An int where a float is expected, a str subclass, a key that is not a str: what json.dumps writes.
    class Tagged(str):
        pass

    r = result_of("allow", Tagged("ok"), RC.ALL_CHECKS_PASSED, 1, 2, "INFO", False, WALL, "o-1", {1: 0.5})
    assert result_bytes(r) == dumps(result_json(r)) == json.dumps(result_json(r), separators=(",", ":")).encode()
    assert json.loads(result_bytes(r))["state_age_s"] == {"1": 0.5}


@settings(max_examples=300, deadline=None)
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | _finite | _text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
        max_leaves=8,
    ),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]),
)
def test_the_kept_decoder_reads_what_json_loads_reads(doc, encoding):
    raw = json.dumps(doc, ensure_ascii=False).encode(encoding, "surrogatepass")
    assert read_json(raw) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"a": 1, "a": 2}', "appears twice"),
        (b'{"x": {"a": 1, "a": 2}}', "appears twice"),
        (b'{"a": ', "not JSON"),
        (b"\xff\xfe\xfd", "not JSON"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_the_kept_decoder_refuses_what_it_refused(raw, why):
    with pytest.raises(ValueError, match=why):
        read_json(raw)
    assert read_json(b'{"q": NaN, "n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890
