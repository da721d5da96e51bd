"""livekit: watch a running Python program from the inside.

Sequence diagrams of who sends what to whom, trees of who owns and restarts
whom, and live charts of CPU and memory, in Jupyter, in scripts and in the
book that comes with it.  The Python counterpart of Elixir's ``Kino.Process``
and ``Kino.VegaLite``.
"""

from __future__ import annotations

from livekit import _display, rpc
from livekit.attaching import attach, detach
from livekit.clusters import Cluster, cluster
from livekit.mermaid import Mermaid
from livekit.nodes import (
    NodeError,
    SpawnHandle,
    connect,
    disconnect,
    get_cookie,
    node,
    set_cookie,
    spawn,
    start_node,
    stop_node,
)
from livekit.runtime import memory, process_info, processes, threads
from livekit.supervisor import Agent, Supervisor, child, stopping
from livekit.trace import SequenceTrace, render_seq_trace, seq_trace, tracing
from livekit.trees import (
    app_tree,
    render_app_tree,
    render_sup_tree,
    started_applications,
    sup_tree,
    track_tasks,
)
from livekit.widgets import VegaLite, listen

__version__ = "0.1.0"

# In the book's kernels, Altair charts go through livekit's offline renderer.
_display.enable_book_renderer()

__all__ = [
    "Agent",
    "Cluster",
    "Mermaid",
    "NodeError",
    "SequenceTrace",
    "SpawnHandle",
    "Supervisor",
    "VegaLite",
    "__version__",
    "app_tree",
    "attach",
    "child",
    "cluster",
    "connect",
    "detach",
    "disconnect",
    "get_cookie",
    "listen",
    "memory",
    "node",
    "process_info",
    "processes",
    "render_app_tree",
    "render_seq_trace",
    "render_sup_tree",
    "rpc",
    "seq_trace",
    "set_cookie",
    "spawn",
    "start_node",
    "started_applications",
    "stop_node",
    "stopping",
    "sup_tree",
    "threads",
    "tracing",
    "track_tasks",
]
