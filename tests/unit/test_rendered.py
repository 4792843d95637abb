"""agent/api/rendered.py: the kept JSON is the model's, byte for byte, and follows every change."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from agent.api.rendered import Rendered
from agent.api.schemas import ResourceList, ResourceOut, Wall
from agent.model import Fault, FaultKind, Hold, Holder, HoldKind, Kind, Resource
from tests.support.clock import local_zone

NOW = 1795489449.25


def same(at: float) -> float:
    return at


def model_json(resources: list[Resource], wall: Wall = same) -> bytes:
    listed = ResourceList.model_construct(resources=[ResourceOut.of(r, wall) for r in resources])
    return listed.model_dump_json().encode()


def fleet() -> list[Resource]:
    hold = Hold(HoldKind.LOCKED, "k", Holder("http://j/", "job/x/1/"), NOW, NOW + 60, 60)
    return [
        Resource(id="a", name="A", kind=Kind.STATIC, description='bench "one" é'),
        Resource(id="b", name="B", kind=Kind.ANDROID, metadata={"battery": "80"}, hold=hold),
        Resource(id="c", name="C", kind=Kind.USB, present=False, absent_since=NOW, health="x"),
        Resource(id="d", name="D", kind=Kind.USB, fault=Fault(FaultKind.QUARANTINED, "3 failed")),
    ]


@pytest.fixture
def zone() -> Iterator[None]:
    with local_zone("Europe/Berlin"):
        yield


def test_the_list_is_the_models_byte_for_byte(zone: None) -> None:
    rendered, resources = Rendered(), fleet()
    assert rendered.resources(resources, same) == model_json(resources)
    assert rendered.resources(resources, same) == model_json(resources)  # from what it kept
    assert rendered.resources([], same) == model_json([])


def test_a_changed_or_removed_resource_is_shown_as_it_is_now(zone: None) -> None:
    rendered, resources = Rendered(), fleet()
    rendered.resources(resources, same)
    resources[1] = replace(resources[1], hold=None, metadata={"battery": "79"})
    del resources[0]
    assert rendered.resources(resources, same) == model_json(resources)


def test_a_new_time_zone_is_obeyed() -> None:
    rendered, resources = Rendered(), fleet()
    for name in ("UTC", "Europe/Berlin", "UTC"):
        with local_zone(name):
            assert rendered.resources(resources, same) == model_json(resources)


def test_a_step_of_the_wall_clock_is_shown() -> None:
    rendered, resources = Rendered(), fleet()
    with local_zone("UTC"):
        assert rendered.resources(resources, same) == model_json(resources)
        stepped: Wall = lambda at: at + 3600.0  # noqa: E731 - the wall clock an hour ahead
        assert rendered.resources(resources, stepped) == model_json(resources, stepped)
        back: Wall = lambda at: at - 7200.4  # noqa: E731 - then two hours behind
        assert rendered.resources(resources, back) == model_json(resources, back)
