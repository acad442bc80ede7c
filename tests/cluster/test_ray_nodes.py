"""The test cluster itself: two 1-CPU hosts beside a head, everything on 127.0.0.1 only."""

from __future__ import annotations

import pytest

from tests.cluster.ray_nodes import RayCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_two_hosts_advertise_loopback_only(two_hosts: RayCluster) -> None:
    alive = two_hosts.alive_nodes()
    assert {n["NodeManagerAddress"] for n in alive} == {"127.0.0.1"}
    hosts = sorted(k for n in alive for k in n["Resources"] if k.startswith("host-"))
    assert hosts == ["host-a", "host-b"]
    assert sum(n["Resources"].get("CPU", 0) for n in alive) == 2
