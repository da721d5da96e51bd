"""A small in-process Dask cluster for the doctests of livekit.clusters.

Its worker is a thread of this process (``processes=False``): the
doctests show how the API reads, cheaply.  The tests in
``tests/test_cluster.py`` use real worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def _doctest_client() -> Iterator[Any]:
    import distributed  # the test extra installs it

    with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]  # unannotated in distributed
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,  # type: ignore[no-untyped-call]  # unannotated in distributed
    ):
        yield client


@pytest.fixture(autouse=True)
def _client_for_doctests(
    request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]
) -> Iterator[None]:
    from livekit.clusters import core

    if isinstance(request.node, pytest.DoctestItem):
        doctest_namespace["client"] = request.getfixturevalue("_doctest_client")
    yield
    for attached in list(core._attached):
        attached.close()
