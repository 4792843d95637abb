"""agent.systemd.logs: the journald line format."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys

import pytest

from agent.systemd.logs import (
    LINE_FORMAT,
    JournalFormatter,
    LoopBatchedHandler,
    StampedFormatter,
    log_lines,
)


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


def _handler() -> tuple[LoopBatchedHandler, io.StringIO, logging.Logger]:
    out = io.StringIO()
    handler = LoopBatchedHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test.batched.{id(out)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return handler, out, logger


async def test_lines_logged_on_the_loop_are_written_at_the_end_of_its_iteration() -> None:
    _, out, logger = _handler()
    logger.info("one")
    logger.info("two")
    assert out.getvalue() == ""  # queued, not yet written
    await asyncio.sleep(0)
    assert out.getvalue() == "one\ntwo\n"
    logger.info("three")
    await asyncio.sleep(0)
    assert out.getvalue() == "one\ntwo\nthree\n"


async def test_a_line_from_another_thread_is_written_at_once_after_those_queued() -> None:
    _, out, logger = _handler()
    logger.info("on the loop")
    await asyncio.to_thread(logger.info, "from a thread")
    assert out.getvalue() == "on the loop\nfrom a thread\n"


def test_without_a_loop_lines_are_written_at_once() -> None:
    handler, out, logger = _handler()
    logger.info("no loop")
    assert out.getvalue() == "no loop\n"
    handler.flush()  # nothing queued: writes nothing more
    assert out.getvalue() == "no loop\n"


def test_what_a_loop_left_queued_is_written_by_the_next_line_or_at_exit() -> None:
    handler, out, logger = _handler()

    async def log_and_stop() -> None:
        logger.info("last on the loop")  # the loop closes before its flush runs

    with asyncio.Runner() as runner:
        runner.run(log_and_stop())
    handler.flush()  # what logging.shutdown() does at exit
    assert out.getvalue() == "last on the loop\n"


def test_lines_are_written_as_logging_writes_them() -> None:
    ours, standard = StampedFormatter(), logging.Formatter(LINE_FORMAT)
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    for created in (1795489449.0, 1795489449.0005, 1795489449.9999, 1795489450.25):
        for msg, args, exc in (
            ("plain 100%", (), None),
            ("with %s", ("argument",), None),
            ("failed", (), exc_info),
        ):
            record = logging.LogRecord("agent.x", logging.WARNING, __file__, 1, msg, args, exc)
            record.created, record.msecs = created, (created - int(created)) * 1000
            assert ours.format(record) == standard.format(record)


LINES = ["action=lock resource=p1 outcome=ok", 'action="forced release" 100% %s', "third"]


def _one_by_one(logger: logging.Logger) -> None:
    for line in LINES:
        logger.info(line)


def _together(logger: logging.Logger) -> None:
    log_lines(logger, logging.INFO, LINES)


@pytest.mark.parametrize(
    "formatter",
    [
        StampedFormatter(),
        JournalFormatter("%(name)s: %(message)s"),
        logging.Formatter("%(message)s"),
    ],
)
async def test_lines_logged_together_read_as_lines_logged_one_by_one(
    formatter: logging.Formatter,
) -> None:
    texts = []
    for log_them in (_one_by_one, _together):
        handler, out, logger = _handler()
        handler.setFormatter(formatter)
        log_them(logger)
        await asyncio.sleep(0)
        text = out.getvalue().replace(logger.name, "NAME")
        if isinstance(formatter, StampedFormatter):  # the milliseconds may differ
            text = re.sub(r"^\S+ \S+ ", "", text, flags=re.MULTILINE)
        texts.append(text.splitlines())
    assert texts[0] == texts[1]
    assert len(texts[1]) == 3
    assert texts[1][1].endswith('action="forced release" 100% %s')


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_lines_go_one_by_one_to_a_handler_that_is_not_ours() -> None:
    logger = logging.getLogger("test.lines.foreign")
    logger.propagate = False
    kept = _Kept()
    logger.handlers[:] = [kept]
    logger.setLevel(logging.INFO)
    log_lines(logger, logging.INFO, LINES)
    log_lines(logger, logging.DEBUG, LINES)  # below the level: nothing
    assert [r.getMessage() for r in kept.records] == LINES
