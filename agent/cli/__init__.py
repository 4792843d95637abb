"""The ``resource-agent`` command line: one module per family of commands.

``base`` holds the group, ``--url`` and the exit codes; ``options`` what
several commands share (``--json``, durations, ids that complete in the
shell); ``machine`` the commands run on the build machine (serve, doctor);
``adb_server`` the adb server the agent asks; ``resources`` those on resources
and coordinators, drawn by ``table``; ``history`` a resource's past holds;
``watch`` ``list --watch``; ``sessions`` the session logs; ``run`` a command
around a locked resource.
"""

from agent.cli import adb_server, history, machine, resources, run, sessions
from agent.cli.base import main

__all__ = ["adb_server", "history", "machine", "main", "resources", "run", "sessions"]
