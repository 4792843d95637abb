"""The crash checker's fold (tests/support/checker.py): what a client's answers let it
know about each hold, including a yes that came while the power was being cut."""

from __future__ import annotations

import time

from tests.support.checker import State, fold
from tests.support.history import DOUBTED, History, Kind, Outcome


def test_a_key_that_came_in_a_doubted_yes_names_what_the_client_does_with_it() -> None:
    """A reservation answered yes as the power was being cut is of unknown outcome,
    but its key reached the client: the lock it then asks for with that key names the
    hold (found once by test_fault_power_cut: both may reach the disk)."""
    history = History()
    history.doubt_from = time.monotonic()
    take = history.invoke("c0", "jsonrpc", Kind.RESERVE, "r0", "queue/1/")
    history.complete(take, Outcome.OK, code=0, key="K1")
    lock = history.invoke("c0", "jsonrpc", Kind.LOCK, "r0", "job/c0/1/", key="K1")
    history.complete(lock, Outcome.OK, code=0, key="K1")
    assert (take.outcome, take.message, lock.outcome) == (Outcome.UNKNOWN, DOUBTED, Outcome.UNKNOWN)

    (model,) = fold(history)[0]
    assert model.state is State.MAYBE and model.key == "K1"
    assert model.urls == {"queue/1/", "job/c0/1/"}


def test_a_take_cut_short_or_refused_lends_its_holder_name_to_nothing_else() -> None:
    history = History()
    cut = history.invoke("c0", "rest", Kind.LOCK, "r0", "c0/1/lock")
    history.complete(cut, Outcome.UNKNOWN, message="connection reset")
    refused = history.invoke("c1", "rest", Kind.RESERVE, "r1", "c1/1/reserve")
    history.complete(refused, Outcome.FAIL, code=15, message="not saved")
    stray = history.invoke("c1", "rest", Kind.LOCK, "r1", "c1/2/lock", key="never-answered")
    history.complete(stray, Outcome.FAIL, code=12)

    models, wrong = fold(history)
    assert wrong == []
    assert [(m.state, m.key, m.urls) for m in models] == [
        (State.MAYBE, None, {"c0/1/lock"}),
        (State.NEVER, None, {"c1/1/reserve"}),
    ]
