"""The holders (clientInfo) the tests use: a Jenkins' queued task and build, another Jenkins;
and keys the tests can predict."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from agent.model import Holder

JENKINS = "http://jenkins.example:8080/"
QUEUED = Holder(JENKINS, "http://jenkins.example:8080/queue/item/7/")
BUILD = Holder(JENKINS, "http://jenkins.example:8080/job/x/12/")
OTHER = Holder("http://other.example/", "http://other.example/job/y/3/")
PERSON = Holder("resource-agent://lab1", "alice")


def numbered_keys(prefix: str = "key-") -> Callable[[], str]:
    """A registry's ``key_source`` whose keys are ``key-0``, ``key-1``... in order."""
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter)}"
