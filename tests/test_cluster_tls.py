"""A cluster whose client and workers speak TLS: livekit goes through Dask's own security.

Its worker is a thread of this process (``processes=False``), which is
enough to show that ``tls://`` names reach the cluster and that livekit
adds no channel of its own beside Dask's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import distributed
import pytest
from distributed.security import Security

import livekit
from livekit import rpc


@pytest.fixture(scope="module")
def tls_client() -> Iterator[Any]:
    security = Security.temporary()  # a throw-away certificate authority (needs cryptography)
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tls://",
            host="127.0.0.1",
            security=security,
            dashboard_address="127.0.0.1:0",
        ) as local,
        distributed.Client(local, security=security, set_as_default=False) as client,
    ):
        yield client


def test_tls_workers_are_nodes(tls_client: Any) -> None:
    with livekit.cluster(tls_client) as cluster:
        (node,) = cluster.nodes
        assert node.startswith("tls://127.0.0.1:")
        assert cluster.scheduler.startswith("tls://127.0.0.1:")
        assert rpc.call(node, "os", "getpid") == os.getpid()
        assert livekit.connect(cluster.scheduler) is True


def test_the_address_form_passes_dasks_security_on(tls_client: Any) -> None:
    address = tls_client.scheduler.address
    with livekit.cluster(address, security=tls_client.security) as cluster:
        assert cluster.client is not tls_client
        assert rpc.call(cluster.nodes[0], "operator", "mul", (6, 7)) == 42
