"""The holders (clientInfo) the tests use: a Jenkins' queued task and build, another Jenkins."""

from __future__ import annotations

from agent.model import Holder

JENKINS = "http://jenkins.example:8080/"
QUEUED = Holder(JENKINS, "http://jenkins.example:8080/queue/item/7/")
BUILD = Holder(JENKINS, "http://jenkins.example:8080/job/x/12/")
OTHER = Holder("http://other.example/", "http://other.example/job/y/3/")
PERSON = Holder("resource-agent://lab1", "alice")
