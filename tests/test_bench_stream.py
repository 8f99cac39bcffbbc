"""bench/stream.py's subscriber counts and reads whole SSE messages, wherever a read ends.

Under a burst a read of the socket ends anywhere inside a message (the hub writes chunks of up to
64 KiB, the bench reads 64 KiB at a time and falls behind), so a pattern looked for in each read
alone is lost when a read boundary cuts it: the bench's burst check once counted one message short
for one subscriber in about 3 runs of 8 and waited out its 60 s limit."""

from __future__ import annotations

from bench.stream import Client
from statehub.stream import frame


def _response() -> tuple[bytes, list[int]]:
    """What the hub sends: headers, the opening comment, then chunks of frames (chunked encoding)."""
    frames = [frame("task.changed", n, f'{{"title":"bench-burst-{n}"}}') for n in range(1, 6)]
    chunks = [b": statehub change stream\n\n", b"".join(frames[:3]), b": keepalive\n\n", b"".join(frames[3:])]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + body, list(range(1, 6))


def test_every_message_is_counted_once_wherever_a_read_ends() -> None:
    stream, ids = _response()
    for cut in range(len(stream) + 1):
        for second in range(cut, len(stream) + 1, 7):
            client = Client()
            for part in (stream[:cut], stream[cut:second], stream[second:]):
                if part:
                    client.take(part, 0.0)
            where = f"reads cut at {cut} and {second}"
            assert client.messages == len(ids), where
            assert client.ids == ids, where
            assert sorted(client.seen) == [b"bench-burst-%d" % n for n in ids], where
            assert not client.dropped, where


def test_a_dropped_message_is_seen_and_counted() -> None:
    stream = b": statehub change stream\n\n" + frame("dropped", None, '{"reason":"slow"}')
    client = Client()
    for n in range(len(stream)):
        client.take(stream[n : n + 1], 0.0)
    assert client.dropped and client.messages == 1 and client.ids == []
