"""The change stream: batches coalesce per subscriber, memory bounded by the key count."""

from __future__ import annotations

from proxy.registry.backend import ChangeFeed, RegistryStats
from proxy.registry.model import ServiceKey

A, B = ServiceKey.of("a.A"), ServiceKey.of("b.B")


async def test_batches_coalesce_and_fan_out() -> None:
    feed = ChangeFeed(RegistryStats())
    async with feed.subscribe() as fast, feed.subscribe() as slow:
        feed.notify([A])
        assert await fast.__anext__() == {A}
        feed.notify([B])
        feed.notify([A, B])
        feed.notify([])  # nothing changed: no wake-up
        assert await fast.__anext__() == {A, B}
        assert await slow.__anext__() == {A, B}  # three notifications, one batch
        assert not fast._ready.is_set()  # nothing pending: the next __anext__ would wait


async def test_unsubscribed_consumers_get_nothing() -> None:
    stats = RegistryStats()
    feed = ChangeFeed(stats)
    async with feed.subscribe() as sub:
        pass
    feed.notify([A])
    assert stats.changes == 1
    assert not sub._pending
