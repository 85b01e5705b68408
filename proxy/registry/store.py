"""The embedded registry's provider store: thread-safe, with lock-free reads.

Writers are grpcio's server threads (one per Publish stream) and the trio task that owns
the registry; they serialise on one ``threading.Lock``. Each write rebuilds the immutable
``Lanes`` of the services it touched and swaps them into a dict, so readers (the proxy's
hot path, on the trio thread) do a plain ``dict.get`` without taking the lock.

After a write, outside the lock, the store calls its listeners with the changed keys and
wakes the Subscribe handlers watching them. Listeners must not block: the embedded backend's
listener only hands the keys to trio with ``TrioToken.run_sync_soon``.

Ownership: every entry belongs to a ``PublisherSession`` (a Publish stream, the backend's
own local session, or the restored state file). Closing a session removes exactly the
entries it still owns, so a provider that re-registered on a new stream survives its old
stream's late teardown.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from proxy.registry.model import EMPTY_LANES, Lanes, Provider, ServiceKey, group_by_env

MAX_REGISTRATIONS_PER_SESSION = 100_000
# why: one publisher may carry a whole process's services (13k in the reference fleet),
# but never unbounded memory.

Listener = Callable[[frozenset[ServiceKey]], None]
Identity = tuple[str, str]

RESTORED_PEER = "state-file"


class RegistrationRefused(ValueError):
    """The store refused a registration (session closed, too many registrations)."""


@dataclass(eq=False)
class PublisherSession:
    """One lease: a Publish stream (or a local / restored pseudo-publisher)."""

    id: int
    peer: str
    lease: float  # seconds without a message before eviction; math.inf never expires
    last_seen: float
    on_evict: Callable[[], None] | None = None
    closed: bool = False
    registrations: set[tuple[ServiceKey, Identity]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Entry:
    provider: Provider
    owner: int  # PublisherSession.id
    stale: bool


class ProviderStore:
    """Registered providers by service; see the module docstring for the threading contract."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._entries: dict[ServiceKey, dict[Identity, _Entry]] = {}
        self._views: dict[ServiceKey, Lanes] = {}
        self._revisions: dict[ServiceKey, int] = {}
        self._stale: frozenset[ServiceKey] = frozenset()
        self._sessions: dict[int, PublisherSession] = {}
        self._listeners: list[Listener] = []
        self._watchers: dict[ServiceKey, set[threading.Event]] = {}
        self._restored: PublisherSession | None = None
        self._restored_until = 0.0
        self.dirty = False  # set on every change; the state-file writer clears it

    # ---- reads (any thread, lock-free) -------------------------------------------------

    def snapshot(self, key: ServiceKey) -> Lanes:
        """The service's lanes; an empty mapping when it has no provider."""
        return self._views.get(key, EMPTY_LANES)

    def revision(self, key: ServiceKey) -> int:
        """A counter bumped on every change of ``key`` (0 when never seen)."""
        return self._revisions.get(key, 0)

    def services(self) -> tuple[ServiceKey, ...]:
        return tuple(sorted(self._views))

    def is_stale(self, key: ServiceKey | None = None) -> bool:
        """True while ``key`` (any key, for ``None``) still serves restored, unconfirmed entries."""
        stale = self._stale
        return bool(stale) if key is None else key in stale

    def entries(self) -> list[tuple[ServiceKey, Provider]]:
        """Every (key, provider), live and stale: what the state file saves."""
        return [(k, p) for k in self.services() for ps in self.snapshot(k).values() for p in ps]

    # ---- listeners and watchers --------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def watch(self, key: ServiceKey, event: threading.Event) -> None:
        """Set ``event`` whenever ``key`` changes (until ``unwatch``)."""
        with self._lock:
            self._watchers.setdefault(key, set()).add(event)

    def unwatch(self, key: ServiceKey, event: threading.Event) -> None:
        with self._lock:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[key]

    # ---- sessions ----------------------------------------------------------------------

    def open_session(
        self, peer: str, lease: float = math.inf, on_evict: Callable[[], None] | None = None
    ) -> PublisherSession:
        """A new lease; it expires ``lease`` seconds after its last ``touch``."""
        with self._lock:
            session = PublisherSession(next(self._ids), peer, lease, self._clock(), on_evict)
            self._sessions[session.id] = session
            return session

    def touch(self, session: PublisherSession) -> None:
        """Record a sign of life (any message on the stream)."""
        session.last_seen = self._clock()

    def register(self, session: PublisherSession, key: ServiceKey, provider: Provider) -> None:
        """Add or replace ``provider`` (by identity) under ``key``, owned by ``session``."""
        self.register_many(session, [(key, provider)])

    def register_many(
        self, session: PublisherSession, items: Iterable[tuple[ServiceKey, Provider]]
    ) -> None:
        """``register`` for many, in one write (one rebuild per touched key, one announce).

        All or nothing: raises ``RegistrationRefused`` (nothing applied) if the session is
        closed or would exceed ``MAX_REGISTRATIONS_PER_SESSION``.
        """
        items = list(items)
        with self._lock:
            if session.closed:
                raise RegistrationRefused("publisher session is closed")
            new_slots = {(k, p.identity) for k, p in items} - session.registrations
            if len(session.registrations) + len(new_slots) > MAX_REGISTRATIONS_PER_SESSION:
                raise RegistrationRefused(
                    f"more than {MAX_REGISTRATIONS_PER_SESSION} registrations on one stream"
                )
            touched: set[ServiceKey] = set()
            confirmed: set[ServiceKey] = set()
            for key, provider in items:
                slot = (key, provider.identity)
                session.registrations.add(slot)
                per_key = self._entries.setdefault(key, {})
                old = per_key.get(provider.identity)
                if old is not None and old.owner != session.id:
                    owner = self._sessions.get(old.owner)
                    if owner is not None:
                        owner.registrations.discard(slot)
                if old is not None and old.stale:
                    confirmed.add(key)
                per_key[provider.identity] = _Entry(provider, session.id, stale=False)
                touched.add(key)
            # A live publisher confirming a restored entry is a change even if the list is not.
            changed = self._rebuild_locked(touched - confirmed)
            changed |= self._rebuild_locked(confirmed, force=True)
        self._announce(changed)

    def unregister(self, session: PublisherSession, key: ServiceKey, provider: Provider) -> bool:
        """Remove ``session``'s registration of ``provider``; False when it owns none."""
        return self.unregister_many(session, [(key, provider)]) == 1

    def unregister_many(
        self, session: PublisherSession, items: Iterable[tuple[ServiceKey, Provider]]
    ) -> int:
        """Remove ``session``'s registrations of these providers; return how many it owned."""
        removed = 0
        with self._lock:
            touched = set()
            for key, provider in items:
                slot = (key, provider.identity)
                if slot not in session.registrations:
                    continue
                session.registrations.discard(slot)
                self._drop_locked(key, provider.identity, session.id)
                touched.add(key)
                removed += 1
            changed = self._rebuild_locked(touched)
        self._announce(changed)
        return removed

    def close_session(self, session: PublisherSession) -> None:
        """End the lease: remove every entry the session still owns. Idempotent."""
        with self._lock:
            if session.closed:
                return
            session.closed = True
            self._sessions.pop(session.id, None)
            keys = set()
            for key, identity in session.registrations:
                self._drop_locked(key, identity, session.id)
                keys.add(key)
            session.registrations.clear()
            changed = self._rebuild_locked(keys)
        self._announce(changed)

    def evict_expired(self) -> list[PublisherSession]:
        """Close every session silent for longer than its lease; return them.

        Each evicted session's ``on_evict`` is called (outside the lock) so its stream is
        torn down too (grpcio's ``context.cancel``).
        """
        now = self._clock()
        with self._lock:
            expired = [s for s in self._sessions.values() if now - s.last_seen > s.lease]
        for session in expired:
            self.close_session(session)
            if session.on_evict is not None:
                session.on_evict()
        return expired

    # ---- restored state (the state file) -----------------------------------------------

    def restore(self, entries: Iterable[tuple[ServiceKey, Provider]], grace: float) -> int:
        """Serve ``entries`` as stale for up to ``grace`` seconds; return how many.

        A live registration of the same provider replaces its stale entry; whatever no
        publisher has confirmed when the grace ends is dropped (``expire_restored``).
        """
        session = self.open_session(RESTORED_PEER)
        items = list(entries)
        self.register_many(session, items)
        count = len(items)
        with self._lock:
            for per_key in self._entries.values():
                for identity, entry in list(per_key.items()):
                    if entry.owner == session.id:
                        per_key[identity] = _Entry(entry.provider, entry.owner, stale=True)
            self._restored = session
            self._restored_until = self._clock() + grace
            self._stale = self._stale_keys_locked()
        return count

    def expire_restored(self) -> bool:
        """Drop restored entries once their grace has passed; True if it did."""
        session = self._restored
        if session is None or self._clock() < self._restored_until:
            return False
        self._restored = None
        self.close_session(session)
        return True

    # ---- internals (lock held) ---------------------------------------------------------

    def _drop_locked(self, key: ServiceKey, identity: Identity, owner: int) -> None:
        per_key = self._entries.get(key)
        if per_key is None:
            return
        entry = per_key.get(identity)
        if entry is not None and entry.owner == owner:
            del per_key[identity]
        if not per_key:
            del self._entries[key]

    def _rebuild_locked(self, keys: set[ServiceKey], force: bool = False) -> frozenset[ServiceKey]:
        changed = set()
        for key in keys:
            per_key = self._entries.get(key)
            new = group_by_env(e.provider for e in per_key.values()) if per_key else EMPTY_LANES
            if not force and new == self._views.get(key, EMPTY_LANES):
                continue
            if per_key:
                self._views[key] = new
            else:
                self._views.pop(key, None)
            self._revisions[key] = self._revisions.get(key, 0) + 1
            changed.add(key)
        if changed:
            self.dirty = True
            self._stale = self._stale_keys_locked()
        return frozenset(changed)

    def _stale_keys_locked(self) -> frozenset[ServiceKey]:
        if self._restored is None and not self._stale:
            return frozenset()
        return frozenset(
            k for k, per_key in self._entries.items() if any(e.stale for e in per_key.values())
        )

    def _announce(self, changed: frozenset[ServiceKey]) -> None:
        if not changed:
            return
        with self._lock:
            listeners = list(self._listeners)
            events = [e for k in changed for e in self._watchers.get(k, ())]
        for listener in listeners:
            listener(changed)
        for event in events:
            event.set()
