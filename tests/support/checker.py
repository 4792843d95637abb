"""Judges the agent's state against a ``History``: nothing acknowledged lost, nothing else done.

The history is folded into one ``HoldModel`` per hold a client took: after
each of its operations the hold is ``live`` (acknowledged and not ended: it
must be in effect), ``ended`` (its release was acknowledged: it must not
be), ``never`` (its taking was refused or never sent: it must never be seen)
or ``maybe`` (an operation on it was cut short by a kill: either is right).
Then, against the running agent:

- every live hold is the resource's current hold, with the holder and kind
  acknowledged last, and a deadline no earlier than the last renewal told;
- every current hold is one a client took (never a refused one, never an
  ended one): nothing unacknowledged half-exists;
- keys of ended holds open nothing (a release with one is refused), and a
  guessed key opens no live hold;
- the agent's own log of holds (``/history``) has every acknowledged take,
  ends every acknowledged release, holds nothing refused, and never two holds
  of one resource at once; and the clients' history agrees -- from each take's
  answer to its release's call, no two holds of one resource overlap.

``cleanup`` force-releases the holds whose taking was cut short (nobody
knows their key), so the resources go back to the pool.
"""

from __future__ import annotations

import enum
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.model import Code
from tests.agentproc import http_request
from tests.support.history import History, Kind, Op, Outcome

KEY_PROBES = 2  # ended keys tried per resource and check
# Refusals of a key that ended: wrong key, expired, nothing held.
KEY_REFUSED = {int(Code.WRONG_KEY), int(Code.EXPIRED), int(Code.NOT_HELD)}


class State(enum.StrEnum):
    """What a hold must be now, by the history."""

    LIVE = "live"
    ENDED = "ended"
    NEVER = "never"
    MAYBE = "maybe"


@dataclass
class HoldModel:
    """One hold a client took, folded from the operations on it."""

    resource: str
    take: Op
    key: str | None
    urls: set[str]
    state: State
    locked: bool | None  # True: a lock acknowledged; None: one cut short; False: none
    expires: float | None = None  # the deadline the latest renewal acknowledged
    start: float | None = None  # when the take was acknowledged
    end: float | None = None  # when the first call that may have ended it was made
    ops: list[Op] = field(default_factory=list)


@dataclass
class Verdict:
    """What a check found."""

    ops: int = 0  # operations judged
    holds: int = 0  # holds judged
    probes: int = 0  # keys tried against the agent
    violations: list[str] = field(default_factory=list)


def fold(history: History, sessions: Iterable[str] = ()) -> tuple[list[HoldModel], list[str]]:
    """One model per take, and the violations the answers alone show."""
    with_session = set(sessions)
    models: list[HoldModel] = []
    by_key: dict[str, HoldModel] = {}
    by_take: dict[str, HoldModel] = {}
    wrong: list[str] = []
    for op in history.ops:
        if op.takes:
            model = _taken(op)
            models.append(model)
            by_take[op.holder] = model
            if model.key is not None:
                by_key[model.key] = model
            continue
        # The checker's forced release names the take it ends by the take's holder.
        held = by_take.get(op.holder) if op.kind is Kind.FORCE else by_key.get(op.key or "")
        if held is None:
            continue  # a key no answer carried: nobody uses it
        held.ops.append(op)
        problem = _apply(held, op, held.resource in with_session)
        if problem:
            wrong.append(f"{held.resource}: {problem} ({_describe(op)})")
    return models, wrong


def _taken(op: Op) -> HoldModel:
    if op.outcome is Outcome.OK:
        locked = op.kind is Kind.LOCK
        return HoldModel(op.resource, op, op.key, {op.holder}, State.LIVE, locked,
                         start=op.completed)  # fmt: skip
    if op.outcome is Outcome.FAIL:
        return HoldModel(op.resource, op, None, {op.holder}, State.NEVER, locked=None)
    # Unknown: cut short (no key came), or a yes that came while the power was being
    # cut (History.doubt_from) -- its key reached the client, which goes on using it,
    # and what it does with it names the hold as any client's would.
    return HoldModel(op.resource, op, op.key, {op.holder}, State.MAYBE, locked=None)


def _apply(held: HoldModel, op: Op, session: bool) -> str | None:
    """Fold ``op`` into ``held``; a violation the answer shows, if any."""
    if op.outcome is Outcome.FAIL and op.code in (None, Code.NOT_SAVED):
        # Never sent (no code), or refused as not saved: nothing changed (the rollback's
        # promise, checked on the state).
        return None
    provisioning_cut = op.kind is Kind.LOCK and (
        (session and op.outcome is Outcome.UNKNOWN) or op.code == Code.PROVISIONING_FAILED
    )
    if held.end is None and (op.kind in (Kind.RELEASE, Kind.FORCE) or provisioning_cut):
        held.end = op.invoked  # from here on it may have ended
    if op.kind is Kind.LOCK and op.outcome is not Outcome.FAIL:
        held.urls.add(op.holder)
    if op.outcome is Outcome.UNKNOWN:
        if op.kind is Kind.LOCK:
            held.locked = held.locked or None
        if provisioning_cut or (op.kind is Kind.RELEASE and held.state is State.LIVE):
            held.state = State.MAYBE
        return None
    if op.outcome is Outcome.OK:
        was = held.state
        held.state = State.ENDED if op.kind in (Kind.RELEASE, Kind.FORCE) else State.LIVE
        if op.kind is Kind.LOCK:
            held.locked, held.expires = True, None  # its deadline is the lease's, if any
        if op.kind is Kind.RENEW:
            held.expires = op.expires
        if was in (State.ENDED, State.NEVER):
            return f"an {was.value} hold answered {op.kind.value} OK"
        return None
    if provisioning_cut:  # refused, and released by the agent
        held.state = State.MAYBE if held.state is State.LIVE else held.state
        return None
    # Refused for another reason: the agent says the key opens nothing (any more).
    was, held.state = held.state, State.ENDED
    if was is State.LIVE:
        return f"the key of a live hold was refused: code {op.code} {op.message}"
    return None


def _describe(op: Op) -> str:
    return f"op {op.index} {op.client} {op.via} {op.kind.value} -> {op.outcome} {op.code}"


def _when(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


class Checker:
    """Checks an agent at ``url`` against ``history``; ``sessions``: resources with sessions."""

    def __init__(
        self, history: History, sessions: Iterable[str] = (), *, deadlines: bool = True
    ) -> None:
        # deadlines=False: the wall clock was stepped, and the deadlines answers told (wall-clock
        # times) are not comparable with those shown now; tests/integration/test_fault_clock.py
        # checks those on their own.
        self.history = history
        self.sessions = set(sessions)
        self.deadlines = deadlines
        self.forced: list[Op] = []

    def check(self, url: str, now: float) -> Verdict:
        """Everything the history promises, against the agent now (``now``: time.monotonic)."""
        models, wrong = fold(self.history, self.sessions)
        verdict = Verdict(ops=len(self.history.ops), holds=len(models), violations=wrong)
        shown = {r["id"]: r for r in _get(url, "/api/resources")["resources"]}
        by_url = {u: m for m in models for u in m.urls}
        by_resource: dict[str, list[HoldModel]] = defaultdict(list)
        for model in models:
            by_resource[model.resource].append(model)
        for rid, res in shown.items():
            held = by_resource.get(rid, [])
            verdict.violations += self._current(rid, res, held, by_url)
            log = _get(url, f"/api/resources/{rid}/history?limit=10000")["history"]
            verdict.violations += _logged(rid, log, held, by_url)
            verdict.violations += _overlaps(rid, held, now)
            verdict.probes += self._probe_keys(url, rid, res, held, verdict.violations)
        return verdict

    def _current(
        self, rid: str, res: dict[str, Any], held: list[HoldModel], by_url: dict[str, HoldModel]
    ) -> Iterator[str]:
        hold = res["holder"]
        model = by_url.get(hold["holder"]["url"]) if hold is not None else None
        if hold is not None:
            if model is None:
                yield f"{rid}: held by {hold['holder']['url']!r}, whom no client named"
            elif model.state in (State.ENDED, State.NEVER):
                why = _describe(model.take)
                yield f"{rid}: a {model.state.value} hold is in effect: {hold} ({why})"
            elif model.locked is True and hold["kind"] != "locked":
                yield f"{rid}: an acknowledged lock is a {hold['kind']}: {hold}"
            elif model.locked is False and hold["kind"] != "reserved":
                yield f"{rid}: a reservation nobody locked is {hold['kind']}: {hold}"
            elif (
                self.deadlines
                and model.expires is not None
                and (_when(hold["expires"]) or 0) < model.expires - 1
            ):
                yield f"{rid}: an acknowledged renewal is lost: {hold} (told {model.expires})"
        for live in (m for m in held if m.state is State.LIVE):
            if live is not model:
                yield f"{rid}: an acknowledged hold is lost: {_describe(live.take)}, shown {hold}"

    def _probe_keys(
        self, url: str, rid: str, res: dict[str, Any], held: list[HoldModel], found: list[str]
    ) -> int:
        """Released keys open nothing, a guessed key opens nothing; answers how many were tried."""
        ended = [m for m in held if m.state is State.ENDED and m.key is not None]
        keys = [m.key for m in ended[-KEY_PROBES:] if m.key is not None]
        if res["holder"] is not None:
            keys.append("guessed-" + rid)
        for key in keys:
            resp = http_request(url, "POST", f"/api/resources/{rid}/release", {"key": key})
            code = resp.json().get("error", {}).get("code") if resp.status != 200 else 0
            if code not in KEY_REFUSED:
                found.append(f"{rid}: a key that should open nothing answered {resp.status} {code}")
        return len(keys)

    def cleanup(self, url: str) -> int:
        """Force-release the holds whose taking was cut short; answers how many."""
        models, _ = fold(self.history, self.sessions)
        by_url = {u: m for m in models for u in m.urls}
        done = 0
        for res in _get(url, "/api/resources")["resources"]:
            hold = res["holder"]
            model = by_url.get(hold["holder"]["url"]) if hold is not None else None
            # Not one whose take was acknowledged: its client has the key.
            acknowledged = model is not None and model.take.outcome is Outcome.OK
            if model is None or acknowledged or model.state is not State.MAYBE:
                continue
            op = self.history.invoke("checker", "rest", Kind.FORCE, res["id"], model.take.holder)
            resp = http_request(url, "POST", f"/api/resources/{res['id']}/release", {"force": True})
            outcome = Outcome.OK if resp.status == 200 else Outcome.FAIL
            self.history.complete(op, outcome, code=0 if resp.status == 200 else resp.status)
            done += resp.status == 200
        return done


def _logged(
    rid: str, log: list[dict[str, Any]], held: list[HoldModel], by_url: dict[str, HoldModel]
) -> Iterator[str]:
    """The agent's log of holds against the models."""
    seen: set[int] = set()
    for entry in log:
        model = by_url.get(entry["holder"]["url"])
        if model is None:
            yield f"{rid}: the log has a hold no client took: {entry}"
            continue
        seen.add(id(model))
        if model.state is State.NEVER:
            yield f"{rid}: a refused take is in the log: {entry}"
        elif model.state is State.LIVE and entry["ended_at"] is not None:
            yield f"{rid}: the log ended a live hold: {entry}"
        elif model.state is State.ENDED and entry["ended_at"] is None:
            yield f"{rid}: the log keeps an ended hold open: {entry}"
    for model in held:
        if model.take.outcome is Outcome.OK and id(model) not in seen:
            yield f"{rid}: an acknowledged take is not in the log: {_describe(model.take)}"
    # Oldest first, in the log's own order: each hold ends before the next begins.
    for first, second in itertools.pairwise(reversed(log)):
        end, start = _when(first["ended_at"]), _when(second["reserved_at"] or second["locked_at"])
        if end is None or start is None or start < end:
            yield f"{rid}: the log has two holds at once: {first} and {second}"


def _overlaps(rid: str, held: list[HoldModel], now: float) -> Iterator[str]:
    """From the clients' side: acknowledged holds of one resource never overlap."""
    spans = sorted(
        (m.start, m.end if m.end is not None else now, m)
        for m in held
        if m.start is not None and m.take.outcome is Outcome.OK
    )
    latest: tuple[float, HoldModel] | None = None
    for start, end, model in spans:
        if latest is not None and start < latest[0]:
            yield (
                f"{rid}: two holders at once: {_describe(latest[1].take)} until "
                f"{latest[0]:.3f}, {_describe(model.take)} from {start:.3f}"
            )
        if latest is None or end > latest[0]:
            latest = (end, model)


def _get(url: str, path: str) -> Any:
    resp = http_request(url, "GET", path, timeout=30)
    assert resp.status == 200, f"GET {path}: HTTP {resp.status} {resp.body[:300]!r}"
    return resp.json()
