"""Rate limiting of tunnel authentication attempts, per peer host. Pure (callers pass ``now``).

A token bucket per peer: ``burst`` attempts at once, then ``rate_per_minute``. Every attempt
spends a token, good or bad, before the token is even looked at, so guessing costs the
attacker time and costs the proxy no HMAC work beyond the bucket (TESTS.md T5).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_TRACKED_PEERS = 4096
# why: bounds the limiter's memory under a spray from many addresses (oldest forgotten first).


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class AuthLimiter:
    def __init__(self, rate_per_minute: float, burst: int) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._peers: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, peer: str, now: float) -> bool:
        """Spend one attempt for ``peer``; False when it has none left."""
        bucket = self._peers.pop(peer, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
        self._peers[peer] = bucket
        if len(self._peers) > MAX_TRACKED_PEERS:
            self._peers.popitem(last=False)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def retry_after(self, peer: str) -> float:
        """Seconds until ``peer`` has an attempt again."""
        bucket = self._peers.get(peer)
        if bucket is None or bucket.tokens >= 1.0 or self._rate <= 0:
            return 0.0
        return (1.0 - bucket.tokens) / self._rate
