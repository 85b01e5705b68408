"""The data paths compiled with mypyc: same Python sources, built in place by ``make``.

Why: laneway's per-call CPU is Python work in the codecs, the relays (``grpc_forward``,
``forward``) and routing (``router``, ``health``, ``routing.table``), and mypyc (the
compiler that ships with mypy, for code as type-annotated as ours) runs that about twice
as fast: a relayed unary gRPC call costs the proxy ~41 us instead of ~80 us, and the Dubbo
relay benchmark (consumer and provider codecs included) takes ~32 us a call instead of
~43 us (``bench/test_grpc_relay.py``, ``bench/test_dubbo_relay.py``,
``bench/RESULTS.md``). Nothing is written by hand in C and the sources stay the
reference: without a compiler (or mypy) laneway runs them as they are, only slower.

``python -m proxy.native`` builds the extension modules next to their sources (one ``.so``
per module) when they are missing or stale, and records a stamp: a hash of the compiled
sources, the Python version and the mypy version. ``python -m proxy.native --clean``
removes them. A ``.so`` shadows its ``.py`` at import, so a stale one would run old code:
:func:`stale` tells, and the test suite refuses to start on stale modules.

Modules that define exception classes overriding class attributes (``grpc.py``,
``errors.py``) stay interpreted: compiled subclasses of interpreted exceptions do not see
those overrides. The Hessian codec and ``dubbo.response`` stay interpreted too: compiled,
the Hessian encoder and a dataclass field typed ``object`` behaved differently (tried; the
tests caught it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "proxy/codecs/grpc/connection",
    "proxy/codecs/grpc/hpack_in",
    "proxy/codecs/grpc/hpack_out",
    "proxy/codecs/grpc/frames",
    "proxy/codecs/grpc/streams",
    "proxy/codecs/grpc/flow",
    "proxy/codecs/grpc/headers",
    "proxy/codecs/grpc/events",
    "routing/table",
    "routing/pick",
    "proxy/grpc_forward",
    "proxy/router",
    "proxy/health",
    "proxy/forward",
    "proxy/codecs/dubbo/framer",
    "proxy/codecs/dubbo/header",
    "proxy/codecs/dubbo/request",
    "proxy/codecs/dubbo/events",
)
STAMP = ROOT / "proxy" / ".native-stamp"
PACKAGES = ("proxy", "routing")


def _sources() -> list[Path]:
    return [ROOT / f"{name}.py" for name in MODULES]


def built() -> list[Path]:
    """Every compiled file in laneway's packages (extension modules and mypyc helpers).

    All of them, not only those of MODULES: a module dropped from the list must not leave
    an old build shadowing its source."""
    return sorted(p for top in PACKAGES for p in (ROOT / top).rglob("*.so"))


def fingerprint() -> str:
    """What the compiled modules must have been built from."""
    try:
        from mypy.version import __version__ as mypy_version
    except ImportError:
        mypy_version = "none"
    digest = hashlib.sha256(f"{sys.version}|{mypy_version}|".encode())
    for source in _sources():
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def stale() -> bool:
    """True when compiled modules exist that were not built from the current sources."""
    if not built():
        return False
    return not STAMP.exists() or STAMP.read_text().strip() != fingerprint()


def clean() -> None:
    for path in built():
        path.unlink()
    STAMP.unlink(missing_ok=True)


def build() -> bool:
    """Compile the modules in place; False (and pure Python) when that is not possible."""
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        clean()
        print(f"laneway native: {exc.name} is not installed; the codec runs interpreted")
        return False
    clean()
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="laneway-native-") as tmp:
        # setuptools reads a pyproject.toml in the working directory: build from a directory
        # holding only a link to the package, so the outputs land next to the sources.
        for top in PACKAGES:
            (Path(tmp) / top).symlink_to(ROOT / top, target_is_directory=True)
        os.chdir(tmp)
        try:
            setup(
                name="laneway-native",
                packages=[],
                py_modules=[],
                ext_modules=mypycify(
                    [f"{name}.py" for name in MODULES],
                    opt_level="3",
                    separate=True,
                ),
                script_args=["--quiet", "build_ext", "--inplace", "--build-temp", "build"],
            )
        except (Exception, SystemExit) as exc:  # a compiler error, a missing header...
            clean()
            print(f"laneway native: build failed ({exc}); the codec runs interpreted")
            return False
        finally:
            os.chdir(cwd)
    STAMP.write_text(fingerprint() + "\n")
    print(f"laneway native: built {len(built())} files ({len(MODULES)} modules)")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the mypyc-compiled HTTP/2 codec.")
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    if args.clean:
        clean()
        return 0
    if not args.force and built() and not stale():
        return 0  # up to date
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
