"""Helpers shared by the suite: no test module imports another, they all import from here.

``clock`` (a fake clock), ``holders`` (the clientInfo values tests use),
``waiting`` (polling until something is true, sync and async), ``net`` (free
ports), ``tomlfile`` (config files through tomli-w), ``core`` (the agent's real
core built with ``build_core``, as the daemon builds it), ``rig`` (that core
feeding real coordinator syncs), ``coordinator`` (``[[coordinator]]`` tables
and Jenkins' metadata for the agent process), ``openapi`` (real answers checked
against the OpenAPI document), ``container`` (this machine's OS booted under a
real systemd, for tests/system/); for the fault tests (docs/reliability.md):
``history``, ``loader`` and ``checker`` (many clients, their calls recorded
Jepsen-style, and the agent judged against them), ``crashes`` (rounds of load,
a fault, a restart and a check), ``disks`` (power cuts, full and read-only
disks) and ``faketime`` (a wall clock to step). ``tests/agentproc.py`` runs the agent process;
``tests/fakes/`` are the stand-ins for the world (adb, phones, Jenkins, udev).
"""
