"""Logging to stderr, in the form journald reads well when it is the reader."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

# sd-daemon(3) priority prefixes, which journald turns into log levels.
_PRIORITY = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}


LINE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # when not the journal


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``; journald adds its own timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = _PRIORITY.get(record.levelno, "<6>")
        return "\n".join(prefix + line for line in text.splitlines())


class StampedFormatter(logging.Formatter):
    """``LINE_FORMAT``, made cheaply: a line is written for every change (the audit trail).

    The time stamp's text is made once per second, and a plain message (no
    arguments, no traceback) skips the generic formatting of every record field.
    """

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)
        self._second = -1
        self._text = ""

    def format(self, record: logging.LogRecord) -> str:
        """The line, as logging.Formatter(LINE_FORMAT) writes it."""
        if record.args or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        return f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.msg}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``2026-11-24 10:15:30,123`` (local time), as logging.Formatter writes it."""
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._text},{int(record.msecs):03d}"


class BadRequestFilter(logging.Filter):
    """One warning line, not an error with a traceback, for a client's malformed HTTP.

    aiohttp logs every unparseable request (a port scan, a TLS hello) as an
    error with a traceback; it is the client's fault, and must not flood the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            problem = (str(exc.message).strip().splitlines() or ["malformed"])[0]
            record.msg = f"{record.getMessage()}: bad HTTP ({exc.code}): {problem}"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """Lines logged on a running event loop are written together, once per loop iteration.

    A group commit of 30 changes logs 30 audit lines from one callback: one
    write(2) for all of them, not one each. A line logged on another thread, or
    with no loop running, is written at once (after any still waiting: order holds).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the line; write it at the end of this loop iteration (or now)."""
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        self._schedule()

    def emit_lines(self, record: logging.LogRecord, lines: Sequence[str]) -> None:
        """Queue one line per message of ``lines``, each as ``record`` with it as its message.

        ``record``'s message is empty: what the formatter makes of it is the lines'
        common start (their time stamp, level and logger), made once for all of them.
        """
        try:
            head = self.format(record)
        except Exception:
            self.handleError(record)
            return
        end = self.terminator
        with self.lock:  # type: ignore[union-attr]  # as Handler.handle holds it for emit
            self._pending.append("".join([f"{head}{line}{end}" for line in lines]))
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the loop's thread, or no loop at all
            self.flush()
            return
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self._flush_scheduled)

    def _flush_scheduled(self) -> None:
        self._scheduled_on = None
        self.flush()

    def flush(self) -> None:
        """Write what is queued (logging.shutdown calls this at exit too)."""
        # Like StreamHandler's errors, a log that cannot be written never stops the agent.
        with self.lock, contextlib.suppress(OSError, ValueError):  # type: ignore[union-attr]
            text = "".join(self._pending)
            self._pending.clear()
            self.stream.write(text)
            self.stream.flush()


# Formatters whose line is a head followed by the message, for a one-line message.
_HEADED = (StampedFormatter, JournalFormatter)


def log_lines(logger: logging.Logger, level: int, lines: Sequence[str]) -> None:
    """Each of ``lines`` as ``logger.log(level, line)`` writes it, with less work per line.

    When every handler on the way is this module's, unfiltered, with its formatters,
    the lines share one record and are formatted and queued together; otherwise (a
    test's handler, a line with a line break) each is logged on its own.
    """
    if not lines or not logger.isEnabledFor(level):
        return
    handlers = _plain_handlers(logger)
    if handlers is None or any("\n" in line for line in lines):
        for line in lines:
            logger.log(level, line)
        return
    record = logger.makeRecord(logger.name, level, "(unknown file)", 0, "", (), None)
    for handler in handlers:
        if level >= handler.level:
            handler.emit_lines(record, lines)


def _plain_handlers(logger: logging.Logger) -> list[LoopBatchedHandler] | None:
    """The handlers a record of ``logger`` goes to, if all are ours and none filters."""
    found: list[LoopBatchedHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            formatter = handler.formatter
            if not (
                isinstance(handler, LoopBatchedHandler)
                and type(formatter) in _HEADED
                and (formatter._fmt or "").endswith("%(message)s")  # type: ignore[union-attr]
                and not handler.filters
            ):
                return None
            found.append(handler)
        current = current.parent if current.propagate else None
    return found or None


def stderr_is_journal() -> bool:
    """Whether stderr is the journal stream systemd connected, not merely inherited.

    systemd sets ``JOURNAL_STREAM=DEV:INODE`` of that stream; a child whose
    stderr goes elsewhere (a pipe, a file) inherits the variable, not the stream.
    """
    dev, sep, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):  # no real file behind sys.stderr
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def setup(level: str) -> None:
    """Configure the root logger for ``level`` (debug, info, warning, error)."""
    handler = LoopBatchedHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(StampedFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Lines name their logger only: a record need not look up its caller's frame,
    # thread and process (a third of each audit line's cost, and one per change).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # The audit trail's changes (INFO) are written whatever the level; its refusals
    # (DEBUG) only when asked for.
    logging.getLogger("agent.audit").setLevel(min(logging.INFO, root.level))
    # aiohttp's access log is noise at info level; keep it for debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in server_log.filters):
        server_log.addFilter(BadRequestFilter())
