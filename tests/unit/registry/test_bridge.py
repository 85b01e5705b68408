"""Z5 listener-nonblocking: the kazoo -> trio bridge never blocks and keeps order."""

from __future__ import annotations

import threading

import trio
import trio.testing

from proxy.registry.zk_bridge import TrioBridge

N = 1000


async def test_posts_from_a_foreign_thread_arrive_in_order() -> None:
    """Z5: 1000 rapid events from a kazoo-like thread arrive in order; post never waits."""
    bridge: TrioBridge[int] = TrioBridge()
    returned = threading.Event()

    def kazoo_thread() -> None:
        for i in range(N):
            bridge.post(i)
        returned.set()

    # The consumer is not reading while the thread posts: post must return anyway.
    await trio.to_thread.run_sync(kazoo_thread)
    assert returned.is_set()
    got = [await bridge.receive.receive() for _ in range(N)]
    assert got == list(range(N))
    assert not bridge.overflowed


async def test_post_on_the_trio_thread_does_not_deadlock() -> None:
    """Z5: kazoo may call a watch on the calling thread, which can be trio's own."""
    bridge: TrioBridge[str] = TrioBridge()
    bridge.post("from-trio-thread")  # from_thread.run_sync would raise / deadlock here
    with trio.fail_after(5):
        assert await bridge.receive.receive() == "from-trio-thread"


async def test_overflow_drops_and_flags_instead_of_blocking() -> None:
    """Z5: a consumer that fell behind costs a resync, never a blocked kazoo thread."""
    bridge: TrioBridge[int] = TrioBridge(buffer=10)

    def flood() -> None:
        for i in range(50):
            bridge.post(i)

    await trio.to_thread.run_sync(flood)
    await trio.testing.wait_all_tasks_blocked()
    assert bridge.overflowed and bridge.dropped == 40
    got = [bridge.receive.receive_nowait() for _ in range(10)]
    assert got == list(range(10))


async def test_post_after_close_is_harmless() -> None:
    bridge: TrioBridge[int] = TrioBridge()
    bridge.close()
    bridge.post(1)
    await trio.testing.wait_all_tasks_blocked()
