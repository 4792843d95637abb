"""The ``resource-agent`` command line: one module per family of commands.

``base`` holds the group, ``--url`` and the exit codes; ``options`` what
several commands share (``--json``, durations, ids that complete in the
shell); ``machine`` the commands run on the build machine (serve, doctor);
``resources`` those on resources and coordinators, drawn by ``table``;
``history`` a resource's past holds; ``watch`` ``list --watch``; ``sessions``
the session logs; ``run`` a command around a locked resource.
"""

from agent.cli import history, machine, resources, run, sessions
from agent.cli.base import main

__all__ = ["history", "machine", "main", "resources", "run", "sessions"]
