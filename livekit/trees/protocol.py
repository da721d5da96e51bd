"""How an object describes its own tree: ``__livekit_tree__()``, and the running roots.

Any object can say what its tree is, as an object says how rich prints it
with ``__rich_console__``: a method ``__livekit_tree__()`` that returns a
:class:`~livekit.trees.TreeNode`, or a ``(TreeNode, caption)`` pair when it
has a better caption than the default.  :func:`~livekit.sup_tree` draws
what it returns.  livekit's own :class:`~livekit.Supervisor` and
:class:`~livekit.Cluster` describe themselves this way; objects of the
standard library that cannot (executors, pools, processes, tasks) are
described by adapters, one line per type in :mod:`livekit.trees.diagrams`.

A long-running object that owns threads (a started supervisor) hands
itself in with :func:`add_root`; :func:`~livekit.app_tree` finds it there,
so that this package never imports the code it draws.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from livekit.trees.format import NODE_CLASSES, TreeNode, walk


@runtime_checkable
class TreeSource(Protocol):
    """An object that describes its own tree.

    Examples
    --------
    >>> from livekit import sup_tree
    >>> class Pipeline:
    ...     def __livekit_tree__(self):
    ...         return TreeNode("pipeline", "root", children=[
    ...             TreeNode("reader", "worker", edge="owns"),
    ...         ])
    >>> isinstance(Pipeline(), TreeSource)
    True
    >>> print(sup_tree(Pipeline()).caption)
    The tree of pipeline.
    """

    def __livekit_tree__(self) -> TreeNode | tuple[TreeNode, str]:
        """Return the object's tree, or its tree and a caption."""


class RunningRoot(TreeSource, Protocol):
    """A :class:`TreeSource` running threads of its own (:func:`~livekit.trees.add_root`)."""

    @property
    def alive(self) -> bool:
        """True while it runs; a root that stopped is not drawn."""

    @property
    def name(self) -> str:
        """The name that running roots are drawn in the order of."""

    def __livekit_threads__(self) -> Iterable[threading.Thread]:
        """The threads its tree draws, so that the interpreter tree draws them once."""


#: An adapter: the types it draws, and what draws one (its tree and a default caption).
Adapter = tuple[type | tuple[type, ...], Callable[[Any], tuple[TreeNode, str]]]


def describe(obj: object, adapters: Iterable[Adapter] = ()) -> tuple[TreeNode, str] | None:
    """Return ``obj``'s tree and default caption, or None if nothing describes it.

    Its own ``__livekit_tree__()`` comes first, then the first of
    ``adapters`` whose types ``obj`` is an instance of.

    Examples
    --------
    >>> class Job:
    ...     def __livekit_tree__(self):
    ...         return TreeNode("job", "root"), "One job."
    >>> describe(Job())
    (TreeNode(label='job', kind='root', edge='', children=[]), 'One job.')
    >>> describe("a string") is None
    True
    """
    own = getattr(type(obj), "__livekit_tree__", None)
    if callable(own):
        return _checked(obj, own(obj))
    for kinds, adapter in adapters:
        if isinstance(obj, kinds):
            return adapter(obj)
    return None


def _checked(obj: object, found: object) -> tuple[TreeNode, str]:
    """What ``__livekit_tree__`` returned, or a TypeError naming the object."""
    root, caption = found if isinstance(found, tuple) and len(found) == 2 else (found, None)
    if not isinstance(root, TreeNode) or not isinstance(caption, (str, type(None))):
        raise TypeError(
            f"{type(obj).__name__}.__livekit_tree__() must return a TreeNode or a "
            f"(TreeNode, caption) pair, got {type(found).__name__}: {found!r}"
        )
    where = f"{type(obj).__name__}.__livekit_tree__()"
    _check_node(where, root)
    for _, _, node in walk(root):
        _check_node(where, node)
    return root, caption if caption is not None else f"The tree of {root.label}."


def _check_node(where: str, node: object) -> None:
    if not isinstance(node, TreeNode):
        raise TypeError(f"{where}: expected TreeNode children, got {type(node).__name__}: {node!r}")
    if node.kind not in NODE_CLASSES:
        raise ValueError(
            f"{where}: expected a node kind among {', '.join(NODE_CLASSES)}, got {node.kind!r}"
        )
    if not isinstance(node.label, str) or not isinstance(node.edge, str):
        raise TypeError(f"{where}: expected str label and edge, got {node!r}")


# ── running roots ────────────────────────────────────────────────────

_roots: weakref.WeakSet[Any] = weakref.WeakSet()
_apps: dict[str, weakref.ref[Any]] = {}
_lock = threading.Lock()


def add_root(root: RunningRoot, *, app: str | None = None) -> None:
    """Let :func:`~livekit.app_tree` find ``root`` while it runs.

    ``app`` names the application it is the root of (``"livekit"`` for
    livekit's own supervisor), for ``app_tree(app)``.  Only a weak
    reference is kept: a root that is dropped is forgotten.

    Examples
    --------
    >>> from livekit import Supervisor
    >>> sup = Supervisor([], name="doctest-root").start()  # start() calls add_root(sup)
    >>> sup in running_roots()
    True
    >>> sup.stop()
    []
    >>> sup in running_roots()
    False
    """
    with _lock:
        _roots.add(root)
        if app is not None:
            _apps[app] = weakref.ref(root)


def running_roots() -> list[RunningRoot]:
    """The roots handed in that run now: those of an application first, then by name."""
    with _lock:
        apps = {id(ref()) for ref in _apps.values()}
        roots = [r for r in list(_roots) if r.alive]
    return sorted(roots, key=lambda r: (id(r) not in apps, r.name))


def app_root(app: str) -> RunningRoot | None:
    """The root handed in as application ``app``, if it still exists."""
    with _lock:
        ref = _apps.get(app)
    return None if ref is None else ref()
