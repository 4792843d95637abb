"""The ``resource-agent`` command line: one module per family of commands.

``base`` holds the group, ``--url`` and the exit codes; ``machine`` the
commands run on the build machine (serve, doctor); ``adb_server`` the adb
server the agent asks; ``resources`` those on resources and coordinators;
``sessions`` the session logs; ``run`` a command around a locked resource.
"""

from agent.cli import adb_server, machine, resources, run, sessions
from agent.cli.base import main

__all__ = ["adb_server", "machine", "main", "resources", "run", "sessions"]
