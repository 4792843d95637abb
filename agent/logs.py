"""Logging to stderr, in the form journald reads well when it is the reader."""

from __future__ import annotations

import logging
import os
import sys

# sd-daemon(3) priority prefixes, which journald turns into log levels.
_PRIORITY = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``; journald adds its own timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = _PRIORITY.get(record.levelno, "<6>")
        return "\n".join(prefix + line for line in text.splitlines())


def setup(level: str) -> None:
    """Configure the root logger for ``level`` (debug, info, warning, error)."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is noise at info level; keep it for debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )
