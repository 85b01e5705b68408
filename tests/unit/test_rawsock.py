"""RawSocketStream keeps trio's rule: a cancelled receive took nothing from the socket.

(A unit test with a socketpair: the read loops' lazy deadlines may fire while a read that
filled the buffer yields, and those bytes must reach the caller.)
"""

from __future__ import annotations

import socket

import trio

from proxy.net.rawsock import RawSocketStream

SIZE = 4096


async def test_a_full_read_is_returned_even_when_the_caller_is_being_cancelled() -> None:
    ours, theirs = socket.socketpair()
    stream = RawSocketStream(ours)
    try:
        theirs.sendall(b"a" * SIZE)
        assert await stream.receive_some(SIZE) == b"a" * SIZE  # filled: read ahead next time
        theirs.sendall(b"b" * SIZE)
        got = b""
        with trio.CancelScope() as scope:
            scope.cancel()
            got = await stream.receive_some(SIZE)  # reads without waiting, then yields
        assert got == b"b" * SIZE
        theirs.sendall(b"c")
        assert await stream.receive_some(SIZE) == b"c"  # short: waits first next time
        theirs.sendall(b"d")
        with trio.CancelScope() as scope:
            scope.cancel()  # cancelled in the wait, before anything is taken
            await stream.receive_some(SIZE)
        assert scope.cancelled_caught
        assert await stream.receive_some(SIZE) == b"d"
    finally:
        stream.close()
        theirs.close()
