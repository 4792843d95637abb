"""Run every benchmark module (or those named on the command line) and print figures."""

from __future__ import annotations

import datetime
import importlib
import os
import pkgutil
import platform
import sys
from pathlib import Path


def machine() -> str:
    """What the figures were measured on: docs/benchmarks.md heads each table with it."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.date.today()}, {os.cpu_count()} cores ({model}), "
        f"Python {platform.python_version()}, load average {load}"
    )


def main(names: list[str]) -> None:
    """Import ``bench.<name>`` for each name (default: all) and call its ``main()``."""
    here = Path(__file__).parent
    # _name modules are helpers run in other processes (bench/_labgrid_client.py), not benches.
    available = sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")
    )
    print(f"# {machine()}", flush=True)
    for name in names or available:
        print(f"== bench.{name}", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
