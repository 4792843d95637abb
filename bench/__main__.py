"""Run every benchmark module (or those named on the command line) and print figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> None:
    """Import ``bench.<name>`` for each name (default: all) and call its ``main()``."""
    here = Path(__file__).parent
    # _name modules are helpers run in other processes (bench/_labgrid_client.py), not benches.
    available = sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")
    )
    for name in names or available:
        print(f"== bench.{name}", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
