"""One coordinator outage of every kind while the lab changes, and what coming back costs.

Shared by tests/integration/test_fault_coordinator.py (which checks the
outcome) and bench/outage.py (which repeats it for figures).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.fakes.jenkins import JenkinsServer
from tests.support.churn import Churn
from tests.support.convergence import converged, in_sync
from tests.support.waiting import wait_for


@dataclass(frozen=True)
class Recovery:
    """What one outage cost once Jenkins came back."""

    changes: int  # changes made in the lab during the outage
    seconds: float  # from Jenkins' return until it matched the agent for good
    requests: int  # requests the agent sent after the return
    held: int  # requests the hung Jenkins carried out late, at its return


def outage(churn: Churn, server: JenkinsServer, steps: int) -> Recovery:
    """Refused, then 500s, then hung, ``steps`` lab changes in each; then back."""
    jenkins = server.jenkins
    done = len(churn.log)
    server.down()  # connections refused
    for _ in range(steps):
        churn.step()
    wait_for(lambda: not in_sync(churn.agent), what="the agent to notice the outage")
    jenkins.outage.errors = True  # back, but every answer an HTML 500
    server.up()
    for _ in range(steps):
        churn.step()
    jenkins.outage.errors = False
    held = jenkins.held
    jenkins.outage.hang = True  # wedged: requests pile up, unanswered
    for _ in range(steps):
        churn.step()
    wait_for(lambda: jenkins.held >= held + 2, what="requests held by the hung Jenkins")
    before = len(jenkins.recorded())
    held = jenkins.held - held
    jenkins.outage.hang = False  # it works through its queue, then answers again
    seconds = converged(churn.agent, server)
    requests = len(jenkins.recorded()) - before - held
    return Recovery(len(churn.log) - done, seconds, requests, held)
