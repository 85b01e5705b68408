"""Flow-control windows (RFC 9113 §5.2, §6.9).

Inbound windows follow the consumer: bytes the peer sent are debited on arrival and only
given back (WINDOW_UPDATE) when the consumer acknowledges them, i.e. when the other side
of the proxy took them (R11). Updates are batched until half the window is due, so a
stream of small messages does not cost one WINDOW_UPDATE per DATA frame.
"""

from __future__ import annotations

from proxy.codecs.grpc.limits import MAX_WINDOW_SIZE


class InboundWindow:
    """What the peer may still send us on one stream or on the connection."""

    __slots__ = ("available", "target", "unacked")

    def __init__(self, target: int) -> None:
        #: Bytes the peer may send before it must wait for a WINDOW_UPDATE.
        self.available = target
        #: The window we want the peer to see when everything is acknowledged.
        self.target = target
        #: Bytes the consumer acknowledged but we have not yet announced.
        self.unacked = 0

    def consume(self, n: int) -> bool:
        """Debit ``n`` received bytes; False when they exceed the window (a flow-control error)."""
        if n > self.available:
            return False
        self.available -= n
        return True

    def acknowledge(self, n: int) -> int:
        """Record ``n`` bytes taken by the consumer; return the increment to announce now (or 0).

        The increment is announced once half the target is due, or when the window is
        down to less than half (so a sender is never stalled waiting for a batch).
        """
        self.unacked += n
        due = self.unacked
        if due and (due * 2 >= self.target or self.available * 2 < self.target):
            grow = min(due, MAX_WINDOW_SIZE - self.available)
            self.available += grow
            self.unacked = 0
            return grow
        return 0

    def retarget(self, target: int) -> int:
        """Change the target (a new SETTINGS_INITIAL_WINDOW_SIZE took effect); return the delta.

        RFC 9113 §6.9.2: the change applies to the window directly and may make it negative.
        """
        delta = target - self.target
        self.target = target
        self.available += delta
        return delta


def grow_outbound(window: int, increment: int) -> int | None:
    """The send window after a WINDOW_UPDATE, or None when it would exceed 2^31-1 (§6.9.1)."""
    new = window + increment
    return None if new > MAX_WINDOW_SIZE else new
