"""Fixtures of the cluster tests: a real Ray cluster (head + two 1-CPU "hosts") and S3 (moto) on loopback.

The cluster is started once per session (~15 s here) and shared; a test that kills a node adds it back (or a new
one) before it ends, so the next test finds two hosts again. Everything runs in the session's private network
namespace (tests/netns.py); outside one the fixture refuses rather than let Ray advertise a real interface.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import netns
from tests.cluster.ray_nodes import RayCluster
from tests.conftest import free_port

HOSTS = ("host-a", "host-b")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    assert netns.private(), (
        "the cluster tests run Ray, which would advertise this machine's network interfaces: run them as root "
        "(the session enters its own network namespace) or under `unshare -n` with `ip link set lo up`"
    )
    cluster = RayCluster()
    try:
        cluster.start_head(free_port())
        for host in HOSTS:
            cluster.add_node(host)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def two_hosts(ray_cluster: RayCluster) -> RayCluster:
    """The shared cluster with both hosts alive (restarting any a previous test killed)."""
    for host in HOSTS:
        node = ray_cluster.nodes.get(host)
        if node is None or node.proc.poll() is not None:
            ray_cluster.nodes.pop(host, None)
            ray_cluster.add_node(host)
    return ray_cluster
