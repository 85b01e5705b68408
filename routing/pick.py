"""Choosing a provider within a lane: weighted random over the usable ones.

Kept apart from ``decide`` so the proxy can swap in least-in-flight later (any
``Picker`` works) and tests can pass a seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from routing.views import ProviderLike

P = TypeVar("P", bound=ProviderLike)

# A picker receives a non-empty list of usable providers and returns one of them.
Picker = Callable[[Sequence[P]], P]


def usable(providers: Sequence[P]) -> list[P]:
    """The providers that may take traffic: healthy and with a positive weight."""
    return [p for p in providers if p.healthy and p.weight > 0]


def pick_weighted(candidates: Sequence[P], rng: random.Random) -> P:
    """One of ``candidates`` (non-empty, positive weights), chosen with probability
    proportional to its weight."""
    if len(candidates) == 1:
        return candidates[0]
    point = rng.random() * sum(p.weight for p in candidates)
    for p in candidates:
        point -= p.weight
        if point < 0:
            return p
    return candidates[-1]  # float rounding at the very top of the range
