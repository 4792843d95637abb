"""Which heads the express lane takes (agent/api/express.py): Jenkins' plain kind, nothing else.

What it does not take goes to aiohttp (tests/integration/test_express.py shows
both on the wire); a head taken wrongly would bypass aiohttp's own checks, so
every rule is tried here one by one.
"""

from __future__ import annotations

import pytest

from agent.api.express import MAX_FIELDS, MAX_HEAD, body_length, keep_alive_seconds
from agent.api.wire import MAX_BODY

JENKINS = (
    b"POST / HTTP/1.1\r\nContent-Type: application/json-rpc\r\nAccept: application/json-rpc\r\n"
    b"User-Agent: Java/17.0.9\r\nHost: agent:8080\r\nConnection: keep-alive\r\n"
    b"Content-Length: 212"
)


def with_field(field: bytes) -> bytes:
    return JENKINS + b"\r\n" + field


def test_jenkins_head_is_taken_with_its_length() -> None:
    assert body_length(JENKINS) == 212
    assert body_length(b"POST / HTTP/1.1\r\ncontent-length:\t0 ") == 0
    assert body_length(b"POST / HTTP/1.1\r\nContent-Length: %d" % MAX_BODY) == MAX_BODY
    assert body_length(with_field(b"Connection: Keep-Alive")) == 212
    assert body_length(with_field(b"X-Utf8: caf\xc3\xa9")) == 212


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.0\r\nContent-Length: 2",
        b"POST /api/resources HTTP/1.1\r\nContent-Length: 2",
        b"POST /?a=1 HTTP/1.1\r\nContent-Length: 2",
        b"GET / HTTP/1.1\r\nContent-Length: 2",
        b"post / HTTP/1.1\r\nContent-Length: 2",
        b"\r\nPOST / HTTP/1.1\r\nContent-Length: 2",
        b"POST / HTTP/1.1\r\nHost: agent",  # no length
        b"POST / HTTP/1.1\r\nContent-Length: %d" % (MAX_BODY + 1),
        b"POST / HTTP/1.1\r\nContent-Length: -1",
        b"POST / HTTP/1.1\r\nContent-Length: +2",
        b"POST / HTTP/1.1\r\nContent-Length: 0x10",
        b"POST / HTTP/1.1\r\nContent-Length: 0000000002",
        b"POST / HTTP/1.1\r\nContent-Length: \xd9\xa2",  # an Arabic-Indic two
        with_field(b"Content-Length: 212"),  # twice, even the same
        with_field(b"Transfer-Encoding: chunked"),
        with_field(b"Content-Encoding: gzip"),
        with_field(b"Expect: 100-continue"),
        with_field(b"Upgrade: websocket"),
        with_field(b"Connection: close"),
        with_field(b"Connection: keep-alive, Upgrade"),
        with_field(b"X-Odd : yes"),  # space before the colon
        with_field(b" folded"),  # obs-fold
        with_field(b"X-Nul: a\x00b"),
        with_field(b"X-Bare-LF: a\nb"),
        with_field(b"X-Bare-CR: a\rb"),
        with_field(b"NoColon"),
        with_field(b"X-Big: " + b"b" * MAX_HEAD),
        JENKINS + b"".join(b"\r\nX-%d: y" % i for i in range(MAX_FIELDS)),
    ],
)
def test_every_other_head_is_left_to_aiohttp(head: bytes) -> None:
    assert body_length(head) is None


def test_keep_alive_is_a_second_shorter_than_the_wait() -> None:
    assert [keep_alive_seconds(s) for s in (0.5, 1.0, 1.5, 5.0, 5.2)] == [1, 1, 1, 4, 5]
