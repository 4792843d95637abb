"""agent.systemd.logs: the journald line format."""

from __future__ import annotations

import logging
import sys

from agent.systemd.logs import JournalFormatter


def test_every_line_of_a_traceback_carries_the_priority() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "agent.x", logging.ERROR, __file__, 1, "failed: %s", ("a",), exc_info
    )
    lines = JournalFormatter("%(name)s: %(message)s").format(record).splitlines()
    assert lines[0] == "<3>agent.x: failed: a"
    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_levels_map_to_syslog_priorities() -> None:
    fmt = JournalFormatter("%(message)s")
    for level, prefix in [
        (logging.DEBUG, "<7>"),
        (logging.INFO, "<6>"),
        (logging.WARNING, "<4>"),
        (logging.ERROR, "<3>"),
        (logging.CRITICAL, "<2>"),
    ]:
        record = logging.LogRecord("a", level, __file__, 1, "m", (), None)
        assert fmt.format(record) == prefix + "m"
