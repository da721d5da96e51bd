"""The public drawings: :func:`sup_tree` and :func:`app_tree`, and their ``render_`` forms.

Each asks one source module for :class:`~livekit.trees.TreeNode` values and
hands them to the pure formatter; an object that describes itself
(``__livekit_tree__``, :mod:`livekit.trees.protocol`) is asked first, the
adapters of :data:`ADAPTERS` next.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing.pool
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import psutil

from livekit import _display
from livekit.mermaid import Mermaid
from livekit.trees.format import TreeNode, check_direction, format_tree
from livekit.trees.interpreter import interpreter_node
from livekit.trees.packages import import_name, package_node
from livekit.trees.pools import mp_pool_node, process_pool_node, thread_pool_node
from livekit.trees.processes import os_process_node, process_of
from livekit.trees.protocol import Adapter, describe
from livekit.trees.supervisors import livekit_node
from livekit.trees.tasks import all_tasks_of, task_children, task_node
from livekit.trees.text import tree_text


def _thread_pool(pool: ThreadPoolExecutor) -> tuple[TreeNode, str]:
    node = thread_pool_node(pool)
    return node, f"The threads that {node.label} owns."


def _process_pool(pool: ProcessPoolExecutor) -> tuple[TreeNode, str]:
    node = process_pool_node(pool)
    return node, f"The worker processes and manager thread that {node.label} owns."


def _mp_pool(pool: multiprocessing.pool.Pool) -> tuple[TreeNode, str]:
    node = mp_pool_node(pool)
    return node, f"{node.label}: its worker handler supervises the workers."


def _task(task: asyncio.Task[object]) -> tuple[TreeNode, str]:
    node = task_node(task, task_children(all_tasks_of(task.get_loop())), root=True)
    return node, f"The tasks that task {task.get_name()!r} awaits or started."


def _os_process(obj: psutil.Process | int) -> tuple[TreeNode, str]:
    proc = process_of(obj)
    return os_process_node(proc, root=True), f"OS process tree of pid {proc.pid}."


#: What draws the objects that cannot describe themselves, by type.
ADAPTERS: tuple[Adapter, ...] = (
    (ThreadPoolExecutor, _thread_pool),
    (ProcessPoolExecutor, _process_pool),
    (multiprocessing.pool.Pool, _mp_pool),
    (asyncio.Task, _task),
    (psutil.Process, _os_process),
)


def _diagram(root: TreeNode, default: str, direction: str, caption: str | None) -> Mermaid:
    source = format_tree(root, direction=direction)
    # A terminal prints the pstree-like drawing instead of the source.
    drawing = functools.partial(tree_text, root)
    return Mermaid(source, caption=caption if caption is not None else default, text=drawing)


def sup_tree(obj: object, *, direction: str = "top_down", caption: str | None = None) -> Mermaid:
    """Return the tree under ``obj`` as a :class:`~livekit.Mermaid` diagram.

    Parameters
    ----------
    obj
        A :class:`~livekit.Supervisor` (nested supervisors included), an
        executor or pool, a process, a task, or an attached Dask cluster
        (:func:`livekit.cluster`).
    direction
        ``"top_down"`` or ``"left_right"``.
    caption
        The diagram's caption; a sentence naming the tree by default.

    Examples
    --------
    >>> from livekit import Agent, Supervisor
    >>> inner = Supervisor([Agent(dict, name="cache")], name="inner")
    >>> print(sup_tree(Supervisor([inner], name="outer")))  # doctest: +ELLIPSIS
    graph TD
      n0["outer (one_for_one)"]:::root
      n0 -->|supervises| n1["inner (one_for_one)"]:::notstarted
      n1 -->|supervises| n2["cache"]:::notstarted
    ...
    >>> sup_tree("my app")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: sup_tree() draws a Supervisor..., got str: 'my app'
    """
    if isinstance(obj, int) and not isinstance(obj, bool):  # a pid (a bool is an int too)
        found: tuple[TreeNode, str] | None = _os_process(obj)
    else:
        found = describe(obj, ADAPTERS)
    if found is None:
        raise TypeError(
            "sup_tree() draws a Supervisor, a ThreadPoolExecutor or ProcessPoolExecutor, "
            "a multiprocessing.pool.Pool, a psutil.Process or pid, an asyncio.Task, or an "
            f"object with __livekit_tree__(), got {type(obj).__name__}: {obj!r}"
        )
    return _diagram(*found, direction, caption)


def render_sup_tree(
    obj: object, *, direction: str = "top_down", caption: str | None = None
) -> None:
    """Display :func:`sup_tree` of ``obj``: drawn in a notebook, printed elsewhere.

    It returns None, so that a notebook cell ending with it shows the tree
    once; call :func:`sup_tree` for the diagram itself.

    Examples
    --------
    >>> from livekit import Supervisor
    >>> render_sup_tree(Supervisor(name="empty"))
    Supervision tree of 'empty'.
    <BLANKLINE>
    empty (one_for_one)
    <BLANKLINE>
    Save it as a page: diagram.save("diagram.html")
    """
    _display.show(sup_tree(obj, direction=direction, caption=caption))


def app_tree(
    app: str | None = None, *, direction: str = "top_down", caption: str | None = None
) -> Mermaid:
    """Return the tree of an application as a :class:`~livekit.Mermaid` diagram.

    Parameters
    ----------
    app
        ``"livekit"``: livekit's own supervisor (:func:`~livekit.supervisor.app_supervisor`)
        and everything running under it.  The import name of any other
        imported package (``"concurrent"``, ``"IPython"``, your own): the
        threads, asyncio tasks and child processes whose code belongs to
        it.  ``None``: the whole interpreter, its threads grouped by owner
        (supervisors, executor pools, packages, user threads), the event
        loops they run with their tasks, and its child processes.
    direction, caption
        As for :func:`sup_tree`; the default caption names the application.

    Examples
    --------
    >>> str(app_tree()).splitlines()[1]  # doctest: +ELLIPSIS
    '  n0["python 3... (pid ...)"]:::root'
    >>> app_tree("no_such_package")
    Traceback (most recent call last):
    ...
    ValueError: unknown package 'no_such_package': not imported in this interpreter
    """
    check_direction(direction)
    if app is None:
        root = interpreter_node()
        default = (
            f"Threads, event loops and child processes of this interpreter (pid {os.getpid()})."
        )
    elif import_name(app) == "livekit":
        root = livekit_node()
        default = "livekit's own supervision tree: the background work livekit runs."
    else:
        root = package_node(import_name(app))
        default = f"Threads, tasks and child processes running code of {app!r}."
    return _diagram(root, default, direction, caption)


def render_app_tree(
    app: str | None = None, *, direction: str = "top_down", caption: str | None = None
) -> None:
    """Display :func:`app_tree` of ``app``: drawn in a notebook, printed elsewhere.

    Like :func:`render_sup_tree`, it returns None.

    Examples
    --------
    >>> render_app_tree("livekit")  # doctest: +ELLIPSIS
    livekit's own supervision tree: the background work livekit runs.
    <BLANKLINE>
    livekit (...
    Save it as a page: diagram.save("diagram.html")
    """
    _display.show(app_tree(app, direction=direction, caption=caption))
