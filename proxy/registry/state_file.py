"""The embedded registry's optional state file: the last known provider list, as JSON.

Written atomically (temp file + rename) so a crash never leaves half a file; read at start
so a restarted registry can serve the last list, marked stale, until publishers reconnect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from proxy.registry.model import InvalidRegistration, Provider, ServiceKey, metadata_of

FORMAT_VERSION = 1

MAX_STATE_FILE_BYTES = 256 * 1024 * 1024
# why: 13k services x 4 providers is ~20 MiB of JSON; refuse anything absurdly larger.


class StateFileError(ValueError):
    """The state file exists but cannot be used (unreadable, wrong format, too large)."""


def save_state(path: Path, entries: Iterable[tuple[ServiceKey, Provider]]) -> None:
    """Write ``entries`` to ``path`` atomically."""
    doc = {
        "format": FORMAT_VERSION,
        "providers": [
            {
                "interface": k.interface,
                "version": k.version,
                "group": k.group,
                "address": p.address,
                "protocol": p.protocol,
                "env": p.env,
                "weight": p.weight,
                "methods": list(p.methods),
                "application": p.application,
                "source": p.source,
                "metadata": dict(p.metadata),
            }
            for k, p in entries
        ],
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(path: Path) -> list[tuple[ServiceKey, Provider]]:
    """The entries saved in ``path``; ``[]`` when it does not exist. Raises ``StateFileError``."""
    try:
        if path.stat().st_size > MAX_STATE_FILE_BYTES:
            raise StateFileError(f"{path}: larger than {MAX_STATE_FILE_BYTES} bytes")
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateFileError(f"{path}: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
        raise StateFileError(f"{path}: not a laneway registry state file (format {FORMAT_VERSION})")
    out = []
    try:
        for item in doc["providers"]:
            key = ServiceKey.of(item["interface"], item["version"], item["group"])
            provider = Provider(
                address=item["address"],
                protocol=item["protocol"],
                env=item["env"],
                weight=int(item["weight"]),
                methods=tuple(item["methods"]),
                application=item["application"],
                source=item["source"],
                metadata=metadata_of(item["metadata"]),
            )
            out.append((key, provider))
    except (KeyError, TypeError, ValueError, InvalidRegistration) as e:
        raise StateFileError(f"{path}: bad entry: {e}") from e
    return out
