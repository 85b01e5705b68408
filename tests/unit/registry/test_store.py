"""The embedded store: ownership, leases, listeners, restored (stale) state."""

from __future__ import annotations

import threading

import pytest

from proxy.registry.model import Provider, ServiceKey
from proxy.registry.store import ProviderStore, RegistrationRefused

KEY = ServiceKey.of("demo.Greeter", "1.0.0")
A = Provider("127.0.0.1:1001", env="main")
B = Provider("127.0.0.1:1002", env="feature-x")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_register_groups_by_env_and_notifies() -> None:
    store = ProviderStore()
    seen: list[frozenset[ServiceKey]] = []
    store.add_listener(seen.append)
    s = store.open_session("p1")
    store.register(s, KEY, A)
    store.register(s, KEY, B)
    assert store.snapshot(KEY) == {"main": (A,), "feature-x": (B,)}
    assert seen == [frozenset({KEY}), frozenset({KEY})]
    store.register(s, KEY, A)  # same again: no change, no notification
    assert len(seen) == 2
    assert store.revision(KEY) == 2
    assert store.services() == (KEY,)


def test_closing_a_session_removes_only_what_it_owns() -> None:
    store = ProviderStore()
    s1, s2 = store.open_session("p1"), store.open_session("p2")
    store.register(s1, KEY, A)
    store.register(s2, KEY, A)  # the provider re-registered on a new stream
    store.register(s1, KEY, B)
    store.close_session(s1)
    assert store.snapshot(KEY) == {"main": (A,)}
    store.close_session(s2)
    assert store.snapshot(KEY) == {}
    assert store.services() == ()
    with pytest.raises(RegistrationRefused):
        store.register(s1, KEY, A)


def test_unregister() -> None:
    store = ProviderStore()
    s = store.open_session("p")
    store.register(s, KEY, A)
    assert store.unregister(s, KEY, A)
    assert not store.unregister(s, KEY, A)
    assert store.snapshot(KEY) == {}


def test_silent_sessions_are_evicted_after_their_lease() -> None:
    """T8-style lease: a stream silent for a whole lease is evicted and its entries dropped."""
    clock = Clock()
    store = ProviderStore(clock)
    cancelled = threading.Event()
    quiet = store.open_session("quiet", lease=3.0, on_evict=cancelled.set)
    chatty = store.open_session("chatty", lease=3.0)
    store.register(quiet, KEY, A)
    store.register(chatty, KEY, B)
    clock.now = 2.0
    store.touch(chatty)
    assert store.evict_expired() == []
    clock.now = 3.5
    assert store.evict_expired() == [quiet]
    assert cancelled.is_set()
    assert store.snapshot(KEY) == {"feature-x": (B,)}


def test_watchers_are_woken_on_change() -> None:
    store = ProviderStore()
    event = threading.Event()
    store.watch(KEY, event)
    s = store.open_session("p")
    store.register(s, ServiceKey.of("other"), A)
    assert not event.is_set()
    store.register(s, KEY, A)
    assert event.is_set()
    store.unwatch(KEY, event)


def test_restored_entries_are_stale_until_confirmed_then_expire() -> None:
    clock = Clock()
    store = ProviderStore(clock)
    other = ServiceKey.of("other.Svc")
    assert store.restore([(KEY, A), (other, B)], grace=10.0) == 2
    assert store.is_stale() and store.is_stale(KEY) and store.is_stale(other)
    assert store.snapshot(KEY) == {"main": (A,)}
    live = store.open_session("p")
    rev = store.revision(KEY)
    store.register(live, KEY, A)  # the publisher came back
    assert not store.is_stale(KEY)
    assert store.is_stale(other)
    assert store.revision(KEY) == rev + 1  # stale -> confirmed is announced
    clock.now = 5.0
    assert not store.expire_restored()
    clock.now = 11.0
    assert store.expire_restored()
    assert store.snapshot(other) == {}
    assert store.snapshot(KEY) == {"main": (A,)}
    assert not store.is_stale()


def test_entries_and_dirty_flag() -> None:
    store = ProviderStore()
    assert not store.dirty
    s = store.open_session("p")
    store.register(s, KEY, A)
    assert store.dirty
    assert store.entries() == [(KEY, A)]
