"""agent/api/cork.py: writes wait for the end of the loop iteration, in order, never lost."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.api.cork import Corked, Outbox


class Recorder(asyncio.Transport):
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append("write_eof")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)


def corked() -> tuple[Corked, Corked, Recorder, Recorder]:
    outbox = Outbox(asyncio.get_running_loop())
    one, two = Recorder(), Recorder()
    return Corked(one, outbox), Corked(two, outbox), one, two


async def test_writes_leave_together_at_the_end_of_the_iteration() -> None:
    a, b, one, two = corked()
    a.write(b"HTTP/1.1 200 OK\r\n")
    b.write(bytearray(b"first"))
    a.writelines([b"\r\n", memoryview(b"body")])
    assert (one.sent, two.sent) == ([], [])
    assert a.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
    await asyncio.sleep(0)
    assert one.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]  # one write for all of it
    assert two.sent == [b"first"]
    b.write(b"second")
    await asyncio.sleep(0)
    assert two.sent == [b"first", b"second"]


async def test_a_held_buffer_is_copied_not_referenced() -> None:
    a, _, one, _ = corked()
    buffer = bytearray(b"answer")
    a.write(buffer)
    buffer[:] = b"XXXXXX"
    await asyncio.sleep(0)
    assert one.sent == [b"answer"]


async def test_closing_sends_what_is_held_first_and_abort_drops_it() -> None:
    a, b, one, two = corked()
    a.write(b"last words")
    a.close()
    assert (one.sent, one.calls) == ([b"last words"], ["close"])
    b.write(b"never sent")
    b.abort()
    await asyncio.sleep(0)
    assert (two.sent, two.calls) == ([], ["abort"])


async def test_half_close_sends_first_and_a_closed_connection_gets_nothing_more() -> None:
    a, _, one, _ = corked()
    a.write(b"end")
    a.write_eof()
    assert (one.sent, one.calls) == ([b"end"], ["write_eof"])
    one.closing = True
    a.write(b"too late")
    await asyncio.sleep(0)
    assert one.sent == [b"end"]
    assert a.get_extra_info("peername") == ("127.0.0.1", 4242)
