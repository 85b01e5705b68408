"""Fixtures for the registry integration tests: one real ZooKeeper per session, a fresh
chroot per test, and a "Dubbo fleet" kazoo client that writes Java-format provider nodes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from tests.zk import ZooKeeperServer, ZooKeeperUnavailable


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperServer]:
    try:
        server = ZooKeeperServer().start()
    except ZooKeeperUnavailable as e:
        pytest.fail(str(e), pytrace=False)  # a missing ZooKeeper FAILS, never skips
    yield server
    server.stop()


@pytest.fixture
def zk_chroot(zk_server: ZooKeeperServer) -> str:
    """A fresh, existing chroot for one test: ``127.0.0.1:PORT/laneway-test-<id>``."""
    chroot = f"/laneway-test-{uuid.uuid4().hex[:12]}"
    admin = KazooClient(hosts=zk_server.hosts, timeout=5.0)
    admin.start(10)
    try:
        admin.ensure_path(chroot)
    finally:
        admin.stop()
        admin.close()
    return zk_server.hosts + chroot


@pytest.fixture
def fleet(zk_chroot: str) -> Iterator[KazooClient]:
    """A kazoo client in the test's chroot, playing the Dubbo fleet (writes nodes)."""
    client = KazooClient(hosts=zk_chroot, timeout=5.0)
    client.start(10)
    yield client
    client.stop()
    client.close()
