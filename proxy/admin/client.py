"""A small blocking client of the admin API, for the CLI (``laneway explain --admin``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlencode

ADMIN_TIMEOUT_S = 10.0
# why: the admin API answers from memory in milliseconds; 10 s means the proxy is not there.
MAX_ADMIN_REPLY_BYTES = 16 * 1024 * 1024
# why: an explain or registry document is kilobytes; refuse to buffer a runaway reply.


class AdminError(RuntimeError):
    """The admin API could not be reached or refused the request; the message says why."""


def base_url(admin: str) -> str:
    """``127.0.0.1:9901`` or ``http://127.0.0.1:9901/`` -> ``http://127.0.0.1:9901``."""
    url = admin if "://" in admin else f"http://{admin}"
    return url.rstrip("/")


def get_json(admin: str, path: str, params: Sequence[tuple[str, str]] = ()) -> dict[str, object]:
    """GET ``path`` with query ``params``; the JSON object answered. Raises AdminError."""
    url = base_url(admin) + path + ("?" + urlencode(list(params)) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=ADMIN_TIMEOUT_S) as reply:
            body = reply.read(MAX_ADMIN_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(MAX_ADMIN_REPLY_BYTES).decode("utf-8", "replace").strip()
        exc.close()
        raise AdminError(f"{url}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise AdminError(f"{url}: {exc}") from exc
    if len(body) > MAX_ADMIN_REPLY_BYTES:
        raise AdminError(f"{url}: reply larger than {MAX_ADMIN_REPLY_BYTES} bytes")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise AdminError(f"{url}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise AdminError(f"{url}: expected a JSON object")
    return doc


def explain(
    admin: str,
    service: str,
    method: str = "",
    headers: Sequence[tuple[str, str]] = (),
    *,
    version: str | None = None,
    group: str | None = None,
) -> dict[str, object]:
    """Ask a running proxy where a call would go (its live providers and health)."""
    params = [("service", service), ("method", method)]
    params += [("h", f"{name}:{value}") for name, value in headers]
    if version is not None:
        params.append(("version", version))
    if group is not None:
        params.append(("group", group))
    return get_json(admin, "/explain", params)
