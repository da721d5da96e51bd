"""Call functions on other nodes: ``livekit.rpc.call``, like Erlang's ``:erpc.call``.

>>> from livekit import rpc
>>> rpc.call  # doctest: +ELLIPSIS
<function call at ...>

See :func:`call`; the exceptions it raises live in :mod:`livekit.nodes`.
"""

from __future__ import annotations

from livekit.nodes.client import call
from livekit.nodes.errors import NodeError, RemoteError, RemoteTraceback, SerializationError

__all__ = ["NodeError", "RemoteError", "RemoteTraceback", "SerializationError", "call"]
