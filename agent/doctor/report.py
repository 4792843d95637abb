"""What ``doctor`` finds, and how it is printed for people and for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: what was checked, whether it passed, what was seen, what to do."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def passed(name: str, detail: str) -> Check:
    """A check that passed."""
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    """A check that failed, with the concrete fix."""
    return Check(name, False, detail, fix)


def warned(name: str, detail: str, fix: str) -> Check:
    """A check that passed, but with a risk worth its fix (it does not fail doctor)."""
    return Check(name, True, detail, fix)


def as_text(checks: Sequence[Check]) -> str:
    """One line per check, the fix indented under each failure or warning, and a verdict."""
    lines = []
    for c in checks:
        label = "FAIL" if not c.ok else "warn" if c.fix else "ok  "
        lines.append(f"{label}  {c.name}: {c.detail}")
        if c.fix:
            lines.append(f"      fix: {c.fix}")
    bad = sum(not c.ok for c in checks)
    lines.append(f"{bad} problem{'s' if bad != 1 else ''} found" if bad else "all checks passed")
    return "\n".join(lines)


def as_json(checks: Sequence[Check]) -> str:
    """``{"ok": bool, "checks": [{name, ok, detail, fix}...]}``."""
    return json.dumps(
        {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2
    )
