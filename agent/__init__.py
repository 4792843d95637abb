"""resource-agent: finds a build machine's devices and is the one authority on who holds them.

Data flows one way, and imports follow it (tests/unit/test_architecture.py checks):

  sources  discovery/: udev, adb, usb (pyusb), static (the config's resources),
     |     inventory (merges them into one resource per device), match (the rule grammar)
     v     facts: describe / vanish / set_health
  core     model/ (the vocabulary), registry + deadlines + refusals (the rules, no I/O),
     |     store (SQLite), authority (rules made durable), events (the bus), core (build_core),
     |     actions (who asked for a change, what it is called), statelock (one agent per state)
     v     committed events
  sinks    coordinator/ (each Jenkins kept in step), sessions/ (provision and clean each
           lock), recovery/ (the ladder for stuck phones), systemd/ (sd_notify, watchdog,
           logs), audit (one log line per change), metrics/ (what Prometheus scrapes)
  api      api/: JSON-RPC for Jenkins, REST and the status page for people, over the core
           and the sinks' status, behind access (who may call what) and limits (abuse)
  tools    cli/, client, doctor/, and daemon (the composition root that wires it all)

Imports: the core imports only the vocabulary and itself; sources import the vocabulary,
config and each other, never the core's machinery (they report through a FactSink); sinks
import the core; the API imports the core and the sinks; only tools import everything.
config/ (with the [[session]] grammar), credentials, lifecycle, addresses, clock (the
steady clock holds run out by) and meters (the metric families every layer counts into)
are shared helpers below all of them.
"""


def __getattr__(name: str) -> str:
    # ``__version__`` on first use: importlib.metadata costs 60 ms at every start, and
    # the store's writer process (agent/store_writer.py) starts with this package too.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resource-agent")
    except PackageNotFoundError:  # run from a checkout that pip never installed
        return "0+unknown"
