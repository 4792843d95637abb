"""resource-agent: finds a build machine's devices and is the one authority on who holds them.

Data flows one way, and imports follow it (tests/unit/test_architecture.py checks):

  sources  discovery/: udev, adb, usb (pyusb), static (the config's resources),
     |     inventory (merges them into one resource per device), match (the rule grammar)
     v     facts: describe / vanish / set_health
  core     model (the vocabulary), registry + deadlines + refusals (the rules, no I/O),
     |     store (SQLite), authority (rules made durable), events (the bus), core (build_core),
     |     actions (who asked for a change, what it is called), statelock (one agent per state)
     v     committed events
  sinks    coordinator/ (each Jenkins kept in step), systemd/ (sd_notify, watchdog, logs),
           audit (one log line per change)
  api      api/: JSON-RPC for Jenkins and REST for people, over the core and the sinks' status,
           behind access (who may call what) and limits (what holds under abuse)
  tools    cli, client, doctor/, and daemon (the composition root that wires it all)

Imports: the core imports only the vocabulary and itself; sources import the vocabulary,
config and each other, never the core's machinery (they report through a FactSink); sinks
import the core; the API imports the core and the sinks; only tools import everything.
config, credentials, lifecycle and addresses are shared helpers below all of them.
"""
