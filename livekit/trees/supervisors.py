"""Supervisors as trees, read through the interface a supervisor offers for it.

This module never imports :mod:`livekit.supervisor`: a
:class:`~livekit.Supervisor` describes itself (its ``__livekit_tree__()``
calls :func:`supervisor_tree`) and hands itself in as a running root when
it starts (:func:`livekit.trees.protocol.add_root`).  What is read of it
is the :class:`SupervisorLike` interface below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from livekit.trees.format import TreeNode
from livekit.trees.protocol import app_root, describe


class ChildRow(Protocol):
    """One child as a supervisor reports it for its tree (its ``ChildState``)."""

    @property
    def spec(self) -> Any:
        """The child's specification: ``name``, ``restart``, ``target``."""

    @property
    def alive(self) -> bool:
        """Whether it runs now."""

    @property
    def restarts(self) -> int:
        """How often it was restarted."""

    @property
    def stopping(self) -> bool:
        """A copy asked to stop has not returned yet."""

    @property
    def waiting(self) -> bool:
        """A new copy waits for the stopping one to return."""

    @property
    def ended(self) -> str | None:
        """How it ended, if that exit made the supervisor give up."""


class SupervisorLike(Protocol):
    """What a supervisor tells of itself for its tree."""

    @property
    def name(self) -> str:
        """Its name."""

    @property
    def strategy(self) -> str:
        """``one_for_one``, ``one_for_all`` or ``rest_for_one``."""

    @property
    def alive(self) -> bool:
        """True from start until stopped or given up."""

    @property
    def exit_reason(self) -> str | None:
        """Why it gave up, or None."""

    def _tree_children(self) -> Iterable[ChildRow]:
        """Its children, each as one :class:`ChildRow`."""

    def _tree_gave_up(self) -> Any:
        """Why it gave up (with a ``limit``), or None."""


def supervisor_tree(sup: SupervisorLike) -> tuple[TreeNode, str]:
    """The tree of a supervisor, and its default caption.

    Examples
    --------
    >>> from livekit import Agent, Supervisor
    >>> root, caption = supervisor_tree(Supervisor([Agent(dict, name="cache")], name="app"))
    >>> root.label, [node.label for node in root.children], caption
    ('app (one_for_one)', ['cache'], "Supervision tree of 'app'.")
    """
    return supervisor_node(sup, root=True), supervisor_caption(sup)


def supervisor_caption(sup: SupervisorLike) -> str:
    """``Supervision tree of 'name'.``, saying why it gave up if it did."""
    if sup.exit_reason is None:
        return f"Supervision tree of {sup.name!r}."
    return f"Supervision tree of {sup.name!r}, which gave up: {sup.exit_reason}."


def _supervisor_label(sup: SupervisorLike) -> str:
    label = f"{sup.name} ({sup.strategy})"
    gave_up = sup._tree_gave_up()
    return label if gave_up is None else f"{label}: gave up, {gave_up.limit}"


def _is_supervisor(target: object) -> bool:
    # A supervisor child is one that describes itself through this module.
    return callable(getattr(target, "_tree_children", None))


def supervisor_node(sup: SupervisorLike, *, root: bool = False, edge: str = "") -> TreeNode:
    """A supervisor and, nested, its children: only a child it restarts is ``supervised``."""
    node = TreeNode(_supervisor_label(sup), "root" if root else "supervisor", edge)
    if sup.exit_reason is not None:
        node.kind = "failed"  # stopped, unlike one that never started: the label says why
    elif not root and not sup.alive:
        node.kind = "notstarted"
    for row in sup._tree_children():
        spec = row.spec
        # Only a child the supervisor would restart is "supervised".
        link = "started" if spec.restart == "temporary" else "supervises"
        if _is_supervisor(spec.target):
            sub = supervisor_node(spec.target, edge=link)
            if not row.alive and sub.kind != "failed":
                sub.kind = "notstarted"
        else:
            label = spec.name if not row.restarts else f"{spec.name} (restarts: {row.restarts})"
            sub = TreeNode(label, "worker" if row.alive else "notstarted", link)
            if row.ended is not None:
                sub.label += f": {row.ended}"
        if row.ended is not None:
            sub.kind = "failed"  # its exit made the supervisor give up
        if row.stopping:
            sub.kind = "stopping"
            sub.label += (
                ": stopping (waiting for the old copy to return)"
                if row.waiting
                else ": stopping (the old copy has not returned)"
            )
        node.children.append(sub)
    return node


def livekit_node() -> TreeNode:
    """livekit's own supervisor, handed in as application ``"livekit"``, as the root."""
    app = app_root("livekit")
    found = describe(app) if app is not None and app.alive else None
    if found is None:
        return TreeNode("livekit (no background work started)", "root")
    return found[0]
