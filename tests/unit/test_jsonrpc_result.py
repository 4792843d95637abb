"""The JSON-RPC result's time fields: ``time``, ``timezone`` and ``isotime`` name one instant.

Jenkins builds its lease from ``time`` and ``timezone`` and shows ``isotime``
(docs/api.md), so all three must agree to the second, at
every instant -- sub-second edges and DST changes included. Checked with the
jsonrpc4j stand-in's own rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from agent.api.jsonrpc import MonitorResult, _result
from agent.model import Code
from tests.fakes.jsonrpc4j import check_result
from tests.support.clock import local_zone

SECOND = 1795489449  # 2026-11-24T03:04:09Z


@pytest.fixture
def zone() -> Iterator[None]:
    """Run in Europe/Berlin (DST), and restore the process' zone afterwards."""
    with local_zone("Europe/Berlin"):
        yield


@pytest.mark.parametrize("fraction", [0.0, 0.4999996, 0.5, 0.9995, 0.9999996, 0.99999996])
def test_isotime_is_the_second_of_time(zone: None, fraction: float) -> None:
    # A fraction within half a microsecond of the next second once made isotime
    # name that next second while time still said this one.
    when = SECOND + fraction
    result = check_result(_result(Code.OK, "reserved r", "k", when))  # agree to the second
    assert abs(result.time - when * 1000) <= 1
    assert result.timezone == 3600


@pytest.mark.parametrize(
    ("when", "offset", "iso"),
    [
        # 02:30 happens twice on 2026-10-25 in Berlin: first in CEST, then in CET.
        (datetime.fromisoformat("2026-10-25T00:30:00+00:00"), 7200, "2026-10-25T02:30:00+02:00"),
        (datetime.fromisoformat("2026-10-25T01:30:00+00:00"), 3600, "2026-10-25T02:30:00+01:00"),
        (datetime.fromisoformat("2026-03-29T00:59:59+00:00"), 3600, "2026-03-29T01:59:59+01:00"),
        (datetime.fromisoformat("2026-03-29T01:00:00+00:00"), 7200, "2026-03-29T03:00:00+02:00"),
    ],
    ids=str,
)
def test_offset_follows_dst_at_the_instant(
    zone: None, when: datetime, offset: int, iso: str
) -> None:
    result = check_result(_result(Code.HELD, "resource r is locked", None, when.timestamp()))
    assert (result.timezone, result.isotime) == (offset, iso)
    assert result.time == int(when.timestamp()) * 1000


def test_the_result_is_exactly_a_monitor_result() -> None:
    # Built as a plain dict for speed: it must still be the model, field for field.
    result = _result(Code.OK, "locked r", "k", SECOND + 0.25)
    assert list(result) == list(MonitorResult.model_fields)
    assert MonitorResult.model_validate(result).model_dump() == result


def test_a_remembered_second_follows_a_change_of_zone() -> None:
    for zone, offset in (("UTC", 0), ("Europe/Berlin", 3600), ("UTC", 0)):
        with local_zone(zone):
            assert _result(Code.OK, "m", None, SECOND)["timezone"] == offset
