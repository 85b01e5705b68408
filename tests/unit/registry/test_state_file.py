"""State file: atomic save, faithful load, loud failure on a foreign file."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.registry.model import Provider, ServiceKey, metadata_of
from proxy.registry.state_file import StateFileError, load_state, save_state


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    entries = [
        (
            ServiceKey.of("a.B", "1.0"),
            Provider(
                "h:1", "tri", "feature-x", 5, ("m",), "app", "registry", metadata_of({"k": "v"})
            ),
        ),
        (ServiceKey.of("c.D"), Provider("h:2")),
    ]
    save_state(path, entries)
    assert load_state(path) == entries
    assert not (tmp_path / "registry.json.tmp").exists()


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_state(tmp_path / "nope.json") == []


@pytest.mark.parametrize("text", ["{", '{"format": 99}', '{"format": 1, "providers": [{}]}'])
def test_bad_files_raise(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StateFileError):
        load_state(path)
