"""Regenerate the Python modules for every ``.proto`` in ``protos/``.

Run as ``python -m protos.build`` from the repository root (``make protos``). Writes
``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` next to each source. The proto path is
the repository root, so the generated modules import each other as ``protos.X_pb2`` and
the runtime needs no grpcio-tools (the generated files are committed).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build() -> list[Path]:
    """Compile every protos/*.proto; return the sources compiled. Raises on protoc errors."""
    # dev-only dependency (grpcio-tools), imported only when building
    import grpc_tools  # type: ignore[import-untyped]
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    sources = sorted((ROOT / "protos").glob("*.proto"))
    for src in sources:
        rel = src.relative_to(ROOT)
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            str(rel),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {rel}")
    return sources


if __name__ == "__main__":
    done = build()
    sys.stdout.write("".join(f"generated {p.relative_to(ROOT)}\n" for p in done))
