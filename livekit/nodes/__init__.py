"""Nodes: other Python processes reached by name, with a cookie, as in Erlang.

Any Python process becomes a node with :func:`start_node` (or the
``livekit node`` command). Another process that holds the same cookie can
then :func:`connect` to it, call functions there with
:func:`livekit.rpc.call`, and :func:`spawn` functions whose prints come
back to the caller.

The modules: :mod:`~livekit.nodes.cookie` (the shared secret),
:mod:`~livekit.nodes.registry` (names, and the per-user registry of this
host's nodes), :mod:`~livekit.nodes.protocol` (the wire and its
handshake), :mod:`~livekit.nodes.server` (the node server),
:mod:`~livekit.nodes.client` (links, calls, spawns) and
:mod:`~livekit.nodes.local` (this interpreter as a node).
"""

from __future__ import annotations

from livekit.nodes.client import SpawnHandle, connect, disconnect, spawn
from livekit.nodes.cookie import get_cookie, set_cookie
from livekit.nodes.errors import NodeError, RemoteError, RemoteTraceback, SerializationError
from livekit.nodes.local import node, start_node, stop_node

__all__ = [
    "NodeError",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "SpawnHandle",
    "connect",
    "disconnect",
    "get_cookie",
    "node",
    "set_cookie",
    "spawn",
    "start_node",
    "stop_node",
]
