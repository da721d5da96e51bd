"""A Dask cluster's processes as livekit nodes: ``livekit.cluster(client)``.

livekit grows no cluster protocol of its own.  Attaching a Dask
distributed cluster makes each worker's address a node name for
:func:`livekit.rpc.call`, :func:`livekit.spawn` and :func:`livekit.connect`
(names with a URL scheme, ``tcp://`` or ``tls://``, come here; ``name@host``
names stay livekit's own), draws the cluster's tree, charts its workers'
memory live, and puts the Dask messages of traced code in
:func:`livekit.seq_trace`'s diagrams.

Dask is an optional extra (``pip install 'livekit-introspect[dask]'``),
imported only when a cluster is attached: importing this package does
not import it.

The modules: :mod:`~livekit.clusters.core` (attaching, the node
operations), :mod:`~livekit.clusters.tree`, :mod:`~livekit.clusters.memory`
and :mod:`~livekit.clusters.tracing`; ``_remote`` holds what runs on the
workers and ``_plugin`` the scheduler plugin of a trace.
"""

from __future__ import annotations

from livekit.clusters.core import Cluster, ClusterSpawnHandle, cluster, is_cluster_node
from livekit.clusters.memory import MemoryChart

__all__ = ["Cluster", "ClusterSpawnHandle", "MemoryChart", "cluster", "is_cluster_node"]
