"""Liveness probe for providers the registry keeps despite an empty push (see ``guard``)."""

from __future__ import annotations

import trio

from proxy.net.rawsock import connect_tcp
from proxy.registry.model import Provider

PROBE_TIMEOUT = 1.0
# why: a live provider on the same network accepts a TCP connection in well under 1 s;
# a blackholed one must not hold the probe loop for the OS's ~2 min connect timeout.


async def tcp_alive(provider: Provider) -> bool:
    """True if ``provider`` accepts a TCP connection within ``PROBE_TIMEOUT`` (then closed)."""
    with trio.move_on_after(PROBE_TIMEOUT):
        try:
            stream = await connect_tcp(provider.host, provider.port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False
