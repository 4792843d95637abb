"""Fuzzing the config loader (hypothesis): any TOML document, and raw text that may not be TOML.

Documents are written by tomli-w from tables shaped like the agent's own
grammar (every section, key and array of tables the settings models know,
[[session]] steps included), each value either the key's default, a
plausible string, or any TOML value; some tables get keys nobody knows.
Whatever comes, ``load_settings`` answers Settings or raises ConfigError
naming the file -- never another exception -- and what the daemon derives
from accepted settings before it starts anything (listen addresses, the
JSON-RPC allowlist, limits, the adb server, session rules) does not fail
either.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agent.api.allow import Allowlist, expand
from agent.api.limits import limits_for
from agent.config import ConfigError, Settings, load_settings, parse_hostport
from agent.config.sessions import rule_for
from agent.model import Kind, Resource
from tests.support.scale import scaled

DOCUMENTS = scaled(400)
TEXTS = scaled(200)
SLOW = [HealthCheck.too_slow]

PLAUSIBLE = st.sampled_from([
    "", "x", "127.0.0.1:8080", "0.0.0.0:0", "[::1]:9", ":8080", "host:99999", "http://j.example/",
    "https://j:8443/ci/", "ftp://x", "android", "static", "usb", "Pixel*", "[a-", "*", "res-1",
    "bad id", "../x", "/tmp/x", "debug", "coordinators", "10.0.0.0/8", "::1", "-1", "nan",
])  # fmt: skip
_scalars = (
    st.text(max_size=12)
    | PLAUSIBLE
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.datetimes(timezones=st.none() | st.just(dt.UTC))
    | st.dates()
    | st.times()
)
toml_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | PLAUSIBLE, inner, max_size=3)
    ),
    max_leaves=8,
)


def _tomlable(value: Any) -> bool:
    try:
        tomli_w.dumps({"v": value})
    except (TypeError, ValueError):
        return False
    return True


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds, directly or as the items of a list (unions included)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


# Valid values for keys that have no default, so that whole documents get accepted too.
EXAMPLES: dict[str, Any] = {
    "url": "http://jenkins.example:8080/", "id": "res-1", "when": {"ID_MODEL": "Pixel*"},
    "run": ["true"], "min": 20, "keep": ["com.example"], "timeout": 30, "name": "phone",
}  # fmt: skip


def _valid(name: str, field: FieldInfo) -> st.SearchStrategy[Any]:
    """Values the key takes: its default, its literals, an example."""
    found: list[st.SearchStrategy[Any]] = []
    annotation = field.annotation
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            found.append(st.sampled_from(typing.get_args(arg)))
    default = field.get_default(call_default_factory=True)
    if default is not None and _tomlable(default):
        found.append(st.just(default))
    if name in EXAMPLES:
        found.append(st.just(EXAMPLES[name]))
    return st.one_of(found) if found else st.nothing()


def _value(name: str, field: FieldInfo, depth: int, wild: bool) -> st.SearchStrategy[Any]:
    annotation = field.annotation
    anything = (PLAUSIBLE | toml_values) if wild else st.nothing()
    if typing.get_origin(annotation) is list:
        items = _models(typing.get_args(annotation)[0])
        if items and depth < 3:
            tables = st.one_of([table(m, depth + 1, wild) for m in items])
            return st.lists(tables, max_size=3) | anything
    models = _models(annotation)
    if models and depth < 3:
        return table(models[0], depth + 1, wild) | anything
    valid = _valid(name, field)
    return valid | anything if wild else valid


def table(model: type[BaseModel], depth: int = 0, wild: bool = True) -> st.SearchStrategy[Any]:
    """A TOML table for ``model``: any of its keys; ``wild``: values of any kind, unknown keys."""
    fields = model.model_fields
    required = {n: _value(n, f, depth, wild) for n, f in fields.items() if f.is_required()}
    optional = {n: _value(n, f, depth, wild) for n, f in fields.items() if not f.is_required()}
    if wild:
        optional |= required
        required = {}
    known = st.fixed_dictionaries(required, optional=optional)
    extra = st.dictionaries(st.text(min_size=1, max_size=8), toml_values, max_size=1)
    return st.tuples(known, extra if wild else st.just({})).map(lambda p: {**p[1], **p[0]})


@st.composite
def nearly_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A document the grammar accepts, with one value somewhere replaced by anything."""
    document: dict[str, Any] = draw(table(Settings, wild=False))
    where: Any = document
    while True:
        keys = sorted(where) if isinstance(where, dict) else list(range(len(where)))
        if not keys:
            return document
        key = draw(st.sampled_from(keys))
        inner = where[key]
        if isinstance(inner, dict | list) and inner and draw(st.booleans()):
            where = inner
            continue
        where[key] = draw(toml_values)
        return document


documents = table(Settings) | table(Settings, wild=False) | nearly_valid()


def load_or_refuse(path: Path) -> Settings | None:
    """Load ``path``: Settings, or None after a ConfigError that names the file."""
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"config {path}"), exc
        return None
    derive(loaded)
    return loaded


def derive(loaded: Settings) -> None:
    """What the daemon works out from settings before it starts anything."""
    server = loaded.server
    for listen in (server.listen, server.tls_listen):
        if listen is not None:
            parse_hostport(listen)
    Allowlist(expand(server.jsonrpc_allow, (c.url for c in loaded.coordinator)))
    limits_for(server)
    parse_hostport(loaded.adb.server)
    for kind in Kind:
        rule_for(loaded.session, Resource("r", "r", kind, metadata={"model": "Pixel 7"}))


@settings(max_examples=DOCUMENTS, deadline=None, suppress_health_check=SLOW)
@given(document=documents)
def test_any_toml_document(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-document.toml"
    path.write_text(tomli_w.dumps(document))
    load_or_refuse(path)


@settings(max_examples=TEXTS, deadline=None, suppress_health_check=SLOW)
@given(text=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_text(tmp_path_factory: pytest.TempPathFactory, text: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-text.toml"
    path.write_bytes(text)
    load_or_refuse(path)
