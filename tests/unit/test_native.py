"""proxy/native.py: the compiled codec is used when built, and never when stale."""

from __future__ import annotations

import proxy.codecs.grpc.connection as connection
from proxy import native


def test_what_runs_is_the_build_when_there_is_one() -> None:
    """With a build present (``make test`` builds one where mypy and a compiler exist),
    the codec modules import from it; without one, from the sources."""
    compiled = str(connection.__file__).endswith(".so")
    assert compiled == bool(native.built()), (connection.__file__, native.built())
    assert not native.stale()


def test_the_fingerprint_covers_every_compiled_source() -> None:
    assert native.fingerprint() == native.fingerprint()
    sources = {p.relative_to(native.ROOT).as_posix() for p in native._sources()}
    assert sources == {f"{name}.py" for name in native.MODULES}
    assert all(p.exists() for p in native._sources())
    # Interpreted on purpose (see the module docstring).
    assert not sources & {"proxy/codecs/grpc/grpc.py", "proxy/codecs/grpc/errors.py"}
