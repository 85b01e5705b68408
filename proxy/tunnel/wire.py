"""The tunnel handshake: length-prefixed JSON messages before HTTP/2 starts. Pure.

```
laptop -> proxy   Hello    {"op": "open", "token", "client", "services": [...], ["env"]}
                           {"op": "list", "token"}                  (laneway tunnel ls)
proxy  -> laptop  Welcome  {"ok": true, "env", "session", "heartbeat", "services": [...],
                            "endpoints": {"dubbo": ..., "grpc": ...}}
                  Listing  {"ok": true, "tunnels": [...]}
                  Refusal  {"ok": false, "error", "retry": bool}
```

Each message is a 4-byte big-endian length and that many bytes of UTF-8 JSON (at most
``MAX_MESSAGE_BYTES``). After a Welcome both ends speak HTTP/2 on the same connection with
the roles reversed: the proxy is the HTTP/2 client and opens one CONNECT stream per
virtual upstream connection (``:authority`` ``svc-<index>`` names the announced service);
the laptop is the HTTP/2 server and pipes each stream to its local provider.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from proxy.registry.model import InvalidRegistration, ServiceKey, split_address

MAX_MESSAGE_BYTES = 64 * 1024
# why: a hello lists at most MAX_SERVICES services of ~200 bytes each; anything larger is abuse.
MAX_SERVICES = 64
# why: one developer runs a handful of services; bounds registry writes per tunnel.
MAX_CLIENT_NAME = 128
# why: a hostname or a person's label; it is shown in logs and `tunnel ls`, nothing longer.
TUNNEL_PROTOCOLS = ("dubbo", "grpc")
_LENGTH = struct.Struct(">I")


class WireError(ValueError):
    """A handshake message is malformed or too large (the peer broke the protocol)."""


def encode_message(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(body)} bytes > {MAX_MESSAGE_BYTES}")
    return _LENGTH.pack(len(body)) + body


class MessageReader:
    """Feed bytes; ``next()`` returns one decoded message once it is complete."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        """Add bytes; feed only while ``next()`` returns None (so at most one message plus
        one read is ever buffered)."""
        self._buf += data

    def next(self) -> dict[str, Any] | None:
        """The next complete message, or None. Raises WireError on a declared length over
        the limit (before its body is awaited) or a body that is not a JSON object."""
        if len(self._buf) < 4:
            return None
        (length,) = _LENGTH.unpack_from(self._buf)
        if length > MAX_MESSAGE_BYTES:
            raise WireError(f"message of {length} bytes > {MAX_MESSAGE_BYTES}")
        if len(self._buf) < 4 + length:
            return None
        body = bytes(self._buf[4 : 4 + length])
        del self._buf[: 4 + length]
        try:
            message = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WireError("message is not JSON") from exc
        if not isinstance(message, dict):
            raise WireError("message is not a JSON object")
        return message

    def leftover(self) -> bytes:
        """Bytes after the last message (the start of HTTP/2): handed to the next layer."""
        out = bytes(self._buf)
        self._buf.clear()
        return out


@dataclass(frozen=True, slots=True)
class Announced:
    """One service a laptop offers: what the proxy publishes (key + protocol)."""

    key: ServiceKey
    protocol: str

    def as_json(self) -> dict[str, str]:
        k = self.key
        return {
            "interface": k.interface,
            "version": k.version,
            "group": k.group,
            "protocol": self.protocol,
        }


@dataclass(frozen=True, slots=True)
class Hello:
    op: str
    token: str
    client: str = ""
    env: str | None = None
    services: tuple[Announced, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "token": self.token, "client": self.client}
        if self.env is not None:
            out["env"] = self.env
        out["services"] = [s.as_json() for s in self.services]
        return out


def _str(message: dict[str, Any], name: str, default: str | None = None) -> str:
    value = message.get(name, default)
    if not isinstance(value, str):
        raise WireError(f"{name!r} must be a string")
    return value


def parse_hello(message: dict[str, Any]) -> Hello:
    """Validate a Hello. Raises WireError naming the bad field."""
    op = _str(message, "op")
    if op not in ("open", "list"):
        raise WireError(f"unknown op {op!r}")
    env = message.get("env")
    if env is not None and not isinstance(env, str):
        raise WireError("'env' must be a string")
    raw = message.get("services", [])
    if not isinstance(raw, list) or len(raw) > MAX_SERVICES:
        raise WireError(f"'services' must be a list of at most {MAX_SERVICES}")
    services: list[Announced] = []
    for item in raw:
        if not isinstance(item, dict):
            raise WireError("each service must be an object")
        protocol = _str(item, "protocol", "dubbo")
        if protocol not in TUNNEL_PROTOCOLS:
            raise WireError(f"protocol must be one of {TUNNEL_PROTOCOLS}, got {protocol!r}")
        try:
            key = ServiceKey.of(
                _str(item, "interface"), _str(item, "version", ""), _str(item, "group", "")
            )
        except InvalidRegistration as exc:
            raise WireError(str(exc)) from exc
        services.append(Announced(key, protocol))
    if op == "open" and not services:
        raise WireError("a tunnel must announce at least one service")
    if len(set(services)) != len(services):
        raise WireError("a service is announced twice")
    client = _str(message, "client", "")[:MAX_CLIENT_NAME]
    return Hello(op, _str(message, "token"), client, env, tuple(services))


def refusal(error: str, *, retry: bool = False) -> dict[str, Any]:
    return {"ok": False, "error": error, "retry": retry}


def check_local_target(target: str) -> str:
    """A ``--to`` address: host:port. Raises WireError."""
    try:
        split_address(target)
    except InvalidRegistration as exc:
        raise WireError(str(exc)) from exc
    return target


SERVICE_AUTHORITY_PREFIX = "svc-"


def service_authority(index: int) -> bytes:
    """The CONNECT ``:authority`` naming the laptop's ``index``-th announced service."""
    return f"{SERVICE_AUTHORITY_PREFIX}{index}".encode()


def parse_service_authority(value: bytes, count: int) -> int | None:
    """The service index in a CONNECT ``:authority``; None when it names nothing announced."""
    text = value.decode("ascii", "replace")
    if not text.startswith(SERVICE_AUTHORITY_PREFIX):
        return None
    digits = text[len(SERVICE_AUTHORITY_PREFIX) :]
    if not digits.isdigit() or len(digits) > 4:
        return None
    index = int(digits)
    return index if index < count else None
