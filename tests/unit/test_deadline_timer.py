"""The shared deadline timer (proxy/net/timer.py), on trio's MockClock: no real waiting."""

from __future__ import annotations

import trio
import trio.testing

from proxy.net.timer import COMPACT_AFTER, DeadlineTimer

TICK = 0.005


async def _with_timer(body: object) -> None:
    timer = DeadlineTimer(tick=TICK, park_after=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer.run)
        assert callable(body)
        await body(timer)
        nursery.cancel_scope.cancel()


def test_deadlines_fire_in_order_within_a_tick_and_cancelled_ones_never() -> None:
    fired: list[tuple[str, float]] = []

    async def body(timer: DeadlineTimer) -> None:
        now = trio.current_time()
        timer.add(now + 0.3, lambda: fired.append(("b", trio.current_time() - now)))
        timer.add(now + 0.1, lambda: fired.append(("a", trio.current_time() - now)))
        cancelled = timer.add(now + 0.2, lambda: fired.append(("x", 0.0)))
        cancelled.cancel()
        await trio.sleep(1)

    trio.run(_with_timer, body, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [name for name, _ in fired] == ["a", "b"]
    assert 0.1 <= fired[0][1] <= 0.1 + 2 * TICK
    assert 0.3 <= fired[1][1] <= 0.3 + 2 * TICK


def test_a_parked_timer_wakes_for_a_new_deadline() -> None:
    fired: list[float] = []

    async def body(timer: DeadlineTimer) -> None:
        await trio.sleep(5)  # idle long enough to park
        start = trio.current_time()
        timer.add(start + 0.05, lambda: fired.append(trio.current_time() - start))
        await trio.sleep(1)

    trio.run(_with_timer, body, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(fired) == 1 and 0.05 <= fired[0] <= 0.05 + 2 * TICK


def test_cancelled_entries_do_not_pile_up() -> None:
    async def body(timer: DeadlineTimer) -> None:
        far = trio.current_time() + 3600
        for _ in range(10 * COMPACT_AFTER):
            timer.add(far, lambda: None).cancel()
        assert timer.pending <= 2 * COMPACT_AFTER + 2

    trio.run(_with_timer, body, clock=trio.testing.MockClock(autojump_threshold=0))
