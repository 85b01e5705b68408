"""Host health for balancing: outlier ejection, READONLY and in-flight counts. Pure.

No I/O and no clock of its own: callers pass ``now`` (``trio.current_time()``), so the
ejection schedule is testable with ``MockClock`` or plain numbers (TESTS.md R6, D14).
"""

from __future__ import annotations

from dataclasses import dataclass

CONSECUTIVE_FAILURES_TO_EJECT = 5
# why: Envoy's outlier default; one or two failures are noise, five in a row are a host.
BASE_EJECTION_SECONDS = 30.0
# why: Envoy's base ejection; long enough for a restarting provider to come back.
MAX_EJECTION_SECONDS = 300.0
# why: Envoy's cap: a host ejected again and again is still retried every 5 minutes.
MAX_EJECTED_FRACTION = 0.1
# why: Envoy's max ejection percent: never eject most of a lane on a correlated blip
# (at least one host may always be ejected).


@dataclass(slots=True)
class HostState:
    """What we know of one provider address."""

    in_flight: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    readonly: bool = False
    """The provider sent READONLY: it is draining, send it nothing new (TESTS.md D14)."""

    def usable(self, now: float) -> bool:
        return not self.readonly and now >= self.ejected_until


class HostHealth:
    """Health of every upstream address the proxy has talked to."""

    def __init__(
        self,
        *,
        failures_to_eject: int = CONSECUTIVE_FAILURES_TO_EJECT,
        base_ejection: float = BASE_EJECTION_SECONDS,
        max_ejection: float = MAX_EJECTION_SECONDS,
        max_ejected_fraction: float = MAX_EJECTED_FRACTION,
    ) -> None:
        self._hosts: dict[str, HostState] = {}
        self._failures_to_eject = failures_to_eject
        self._base = base_ejection
        self._max = max_ejection
        self._fraction = max_ejected_fraction
        self.ejections_total = 0
        #: Bumped whenever a host's ``usable`` answer may change other than by the clock
        #: (an ejection, a READONLY change): callers may cache answers per epoch.
        self.epoch = 0
        #: The latest ``ejected_until`` of any host: from then on no ejection is running,
        #: and ``usable`` no longer depends on ``now``.
        self.ejections_end = 0.0

    def state(self, address: str) -> HostState:
        host = self._hosts.get(address)
        if host is None:
            host = self._hosts[address] = HostState()
        return host

    def usable(self, address: str, now: float) -> bool:
        host = self._hosts.get(address)
        return host is None or host.usable(now)

    def usable_in_panic(self, address: str, now: float) -> bool:
        """Usable when outlier ejection is ignored: only READONLY hosts are out."""
        host = self._hosts.get(address)
        return host is None or not host.readonly

    def in_flight(self, address: str) -> int:
        host = self._hosts.get(address)
        return 0 if host is None else host.in_flight

    def started(self, address: str) -> None:
        self.state(address).in_flight += 1

    def release(self, address: str) -> None:
        """A call reserved at ``address`` never went there (connect failed, one-way sent):
        free its slot without counting an outcome."""
        host = self.state(address)
        host.in_flight = max(0, host.in_flight - 1)

    def finished(self, address: str, *, ok: bool, now: float) -> None:
        """A call to ``address`` ended; ``ok`` False for connect failures, resets, 5xx-like
        statuses. Ejects after ``failures_to_eject`` failures in a row, within the cap."""
        host = self.state(address)
        host.in_flight = max(0, host.in_flight - 1)
        if ok:
            host.consecutive_failures = 0
            return
        host.consecutive_failures += 1
        if host.consecutive_failures >= self._failures_to_eject and self._may_eject(now):
            host.ejections += 1
            self.ejections_total += 1
            host.consecutive_failures = 0
            host.ejected_until = now + min(self._max, self._base * host.ejections)
            self.ejections_end = max(self.ejections_end, host.ejected_until)
            self.epoch += 1

    def connect_failed(self, address: str, now: float) -> None:
        """Count a failed connect like a failed call (without an in-flight slot)."""
        self.state(address).in_flight += 1
        self.finished(address, ok=False, now=now)

    def set_readonly(self, address: str, readonly: bool) -> None:
        host = self.state(address)
        if host.readonly != readonly:
            host.readonly = readonly
            self.epoch += 1

    def stable(self, now: float) -> bool:
        """True when ``usable`` answers depend on the epoch only (no ejection running)."""
        return now >= self.ejections_end

    def _may_eject(self, now: float) -> bool:
        known = len(self._hosts)
        ejected = sum(1 for h in self._hosts.values() if now < h.ejected_until)
        return ejected == 0 or (ejected + 1) <= self._fraction * known

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        """A JSON-ready view for the admin API and tests."""
        return {
            addr: {
                "in_flight": h.in_flight,
                "consecutive_failures": h.consecutive_failures,
                "ejections": h.ejections,
                "ejected": now < h.ejected_until,
                "readonly": h.readonly,
            }
            for addr, h in sorted(self._hosts.items())
        }
