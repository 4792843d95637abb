"""agent/api/wire.py: request bodies read the same whichever parser reads them, answers as sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.api.wire import BadJSON, _parse_strictly, encode, parse_json

# JSON values as a JSON-RPC body may hold them: text (surrogate pairs included), numbers
# of every size, nesting.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_the_fast_parser_reads_what_the_strict_one_reads(value: Any) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    parsed = parse_json(body)
    assert parsed == _parse_strictly(body)
    assert json.dumps(parsed) == json.dumps(value)  # ints stay ints, floats floats


@pytest.mark.parametrize(
    "number", [2**63 - 1, 2**64 - 1, 2**64, 10**19, 10**30, -(2**70), 123456789012345678901234]
)
def test_a_long_id_comes_back_exactly(number: int) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": number}).encode()
    request = parse_json(body)
    assert request["id"] == number and isinstance(request["id"], int)
    answer = encode({"jsonrpc": "2.0", "result": None, "id": request["id"]})
    assert json.loads(answer)["id"] == number


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed JSON"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"[1e400]", "out of range"),
        (b"\xff", "not UTF-8"),
        (b'"\\ud800"', "lone surrogate"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"1" * 5000, "unusable number"),
        (b'{"a": 1} x', "malformed JSON"),
    ],
)
def test_a_bad_body_is_refused_with_the_strict_parsers_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BadJSON, match=reason):
        parse_json(body)


def test_answers_are_compact_utf8() -> None:
    assert encode({"message": "réservé", "key": None, "n": [1, 2.5]}) == (
        '{"message":"réservé","key":null,"n":[1,2.5]}'.encode()
    )
