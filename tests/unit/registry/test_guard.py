"""Z2 empty-push (pure part): main keeps its providers on an empty push; envs follow it."""

from __future__ import annotations

from proxy.registry.guard import drop_dead, protect_main
from proxy.registry.model import Provider, group_by_env

M1 = Provider("h:1")
M2 = Provider("h:2")
F = Provider("h:3", env="feature-x")
G = Provider("h:4", env="feature-y")


def test_empty_main_push_keeps_previous_main() -> None:
    """Z2 empty-push: baseline keeps the previous list; the tunnel/project env is removed."""
    old = group_by_env([M1, M2, F])
    lanes, kept = protect_main(old, group_by_env([G]))
    assert kept == (M1, M2)
    assert lanes == {"main": (M1, M2), "feature-y": (G,)}


def test_normal_pushes_pass_through() -> None:
    old = group_by_env([M1, F])
    new = group_by_env([M2])
    assert protect_main(old, new) == (new, ())
    assert protect_main(group_by_env([F]), group_by_env([])) == (group_by_env([]), ())


def test_drop_dead() -> None:
    lanes = group_by_env([M1, M2, F])
    assert drop_dead(lanes, [M1]) == {"main": (M2,), "feature-x": (F,)}
    assert drop_dead(group_by_env([M1]), [M1]) == {}
