"""Attributes set on classes and modules while a trace runs, and put back after."""

from __future__ import annotations

from typing import Any

_MISSING = object()

# (class or module, attribute name, what it was or _MISSING)
Patch = tuple[Any, str, Any]


class Patches:
    """Attributes set on classes and modules, and how to put them back.

    An attribute the owner had of its own comes back as it was; one it
    did not have (a C method it inherited, say) comes back by deleting
    what shadowed it.

    Examples
    --------
    >>> import types
    >>> box = types.SimpleNamespace(size=1)
    >>> patches = Patches()
    >>> patches.set(box, "size", 2)
    >>> patches.set(box, "colour", "red")
    >>> box.size, box.colour
    (2, 'red')
    >>> patches.restore()
    >>> vars(box)
    {'size': 1}
    """

    def __init__(self) -> None:
        self._saved: list[Patch] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        """Set ``owner.name`` to ``value``, remembering what it was."""
        self._saved.append((owner, name, vars(owner).get(name, _MISSING)))
        setattr(owner, name, value)

    def restore(self) -> None:
        """Put back everything set, newest first: an attribute set twice ends as it began."""
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


__all__ = ["Patches"]
