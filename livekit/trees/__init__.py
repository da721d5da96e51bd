"""Trees of who owns, starts and restarts whom, drawn as Mermaid.

:func:`~livekit.sup_tree` draws one object's tree: a :class:`~livekit.Supervisor`, an
executor, a ``multiprocessing`` pool, an OS process, an asyncio task, or any
object that describes its own tree with ``__livekit_tree__()``.
:func:`~livekit.app_tree` draws an application: livekit's own supervisor, the work
of any imported package, or the whole interpreter.
:func:`~livekit.started_applications` lists the distributions this interpreter uses.

Capture and format are apart: each source module (``supervisors``,
``pools``, ``processes``, ``tasks``, ``interpreter``, ``packages``) turns
live objects into plain :class:`TreeNode` values, and the pure formatter
(``format``: :func:`format_tree`) turns those into Mermaid text, and
``text`` (:func:`tree_text`) into a ``pstree``-like drawing for a terminal.  The
protocol through which an object describes itself is in ``protocol``;
``diagrams`` holds the public functions.  Edges say what is true:
``supervises`` only where the parent restarts the child, ``owns`` where it
holds the child without restarting it, ``started`` where it merely started
it, ``awaits`` where an asyncio task waits for another.
"""

from __future__ import annotations

from livekit.trees.diagrams import app_tree, render_app_tree, render_sup_tree, sup_tree
from livekit.trees.format import Direction, NodeClass, TreeNode, format_tree
from livekit.trees.packages import Application, started_applications
from livekit.trees.protocol import TreeSource, add_root
from livekit.trees.tasks import track_tasks
from livekit.trees.text import tree_text

__all__ = [
    "Application",
    "Direction",
    "NodeClass",
    "TreeNode",
    "TreeSource",
    "add_root",
    "app_tree",
    "format_tree",
    "render_app_tree",
    "render_sup_tree",
    "started_applications",
    "sup_tree",
    "track_tasks",
    "tree_text",
]
