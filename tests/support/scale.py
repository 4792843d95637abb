"""How much the fault and fuzz tests do: ``FAULTS_SCALE`` (default 1) multiplies it.

``make test`` runs them at 1, a few minutes' worth in all; ``make faults``
runs them at 10 (or ``FAULTS_SCALE=N``) for a longer hunt.
"""

from __future__ import annotations

import os


def scaled(count: int) -> int:
    """``count`` times ``FAULTS_SCALE``."""
    raw = os.environ.get("FAULTS_SCALE", "1")
    try:
        factor = int(raw)
    except ValueError:
        raise AssertionError(f"FAULTS_SCALE must be a whole number, not {raw!r}") from None
    if factor < 1:
        raise AssertionError(f"FAULTS_SCALE must be 1 or more, not {factor}")
    return count * factor
