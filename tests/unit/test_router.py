"""Router.candidates: the per-(service, protocols) cache never serves stale health or lanes."""

from __future__ import annotations

from proxy.health import HostHealth
from proxy.registry.model import Lanes, Provider, ServiceKey
from proxy.router import Router, TableRef
from routing import loads

KEY = ServiceKey.of("demo.Greeter")
GRPC = ("grpc", "tri")
A = Provider(address="127.0.0.1:7001", protocol="grpc", env="main")
B = Provider(address="127.0.0.1:7002", protocol="grpc", env="main")
FEATURE = Provider(address="127.0.0.1:7003", protocol="grpc", env="feature-1")
DUBBO = Provider(address="127.0.0.1:7004", protocol="dubbo", env="main")


class World:
    """A router over lanes the test swaps, with a clock the test moves."""

    def __init__(self) -> None:
        self.lanes: Lanes = {"main": (A, B, DUBBO), "feature-1": (FEATURE,)}
        self.now = 100.0
        self.health = HostHealth(failures_to_eject=1, base_ejection=10.0, max_ejected_fraction=1)
        self.router = Router(
            TableRef(loads("environments: {feature-1: {}}\n", "routes.yaml")),
            lambda _key: self.lanes,
            self.health,
            lambda: self.now,
        )

    def healthy(self, **kwargs: object) -> dict[str, bool]:
        got = self.router.candidates(KEY, GRPC, **kwargs)  # type: ignore[arg-type]
        return {c.address: c.healthy for lane in got.values() for c in lane}


def test_candidates_filter_by_protocol_and_repeat_as_one_shared_object() -> None:
    world = World()
    first = world.router.candidates(KEY, GRPC)
    assert {env: [c.address for c in lane] for env, lane in first.items()} == {
        "main": [A.address, B.address],
        "feature-1": [FEATURE.address],
    }
    assert world.router.candidates(KEY, GRPC) is first  # served from the cache
    assert world.router.candidates(KEY, ("dubbo",)) is not first


def test_a_new_lanes_object_is_seen_at_once() -> None:
    world = World()
    world.healthy()
    world.lanes = {"main": (B,)}
    assert world.healthy() == {B.address: True}


def test_an_ejection_and_its_expiry_are_seen_at_once() -> None:
    world = World()
    assert world.healthy()[A.address] is True
    world.health.finished(A.address, ok=False, now=world.now)  # ejected for 10 s
    assert world.healthy()[A.address] is False
    world.now += 9.9
    assert world.healthy()[A.address] is False
    world.now += 0.2  # the ejection is over: no event, only the clock
    assert world.healthy()[A.address] is True


def test_readonly_and_back_are_seen_at_once() -> None:
    world = World()
    world.healthy()
    world.health.set_readonly(B.address, True)
    assert world.healthy()[B.address] is False
    world.health.set_readonly(B.address, False)
    assert world.healthy()[B.address] is True


def test_exclusions_and_panic_mode_bypass_the_cache() -> None:
    world = World()
    cached = world.router.candidates(KEY, GRPC)
    assert world.healthy(exclude={A.address})[A.address] is False
    world.health.finished(B.address, ok=False, now=world.now)
    assert world.healthy(panic=True)[B.address] is True
    assert world.healthy()[B.address] is False
    assert world.router.candidates(KEY, GRPC) is not cached


def test_health_epoch_moves_only_on_changes_that_matter() -> None:
    health = HostHealth(failures_to_eject=2, max_ejected_fraction=1)
    epoch = health.epoch
    health.started(A.address)
    health.finished(A.address, ok=True, now=0.0)
    health.finished(A.address, ok=False, now=0.0)  # one failure: not ejected yet
    health.set_readonly(A.address, False)  # no change
    assert health.epoch == epoch and health.stable(0.0)
    health.finished(A.address, ok=False, now=0.0)  # ejected
    assert health.epoch == epoch + 1
    assert not health.stable(1.0)
    assert health.stable(health.ejections_end)
