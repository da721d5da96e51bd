"""The kinds of output livekit shows, one module each.

Each kind owns everything about showing itself: its MIME type, its bundle
for each front end (``livekit._display.host()`` says which one is
showing it), its figure HTML, its vendored JavaScript and its myst-nb
plugin.

* :mod:`livekit.outputs.mermaid`: diagrams (sequence traces, trees);
* :mod:`livekit.outputs.vegalite`: Vega-Lite charts, static and live.

The Sphinx extension and the myst-nb plugin loop over :data:`KINDS` rather
than naming each kind.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from livekit import _assets

#: The modules of the kinds, in the order a page loads their scripts.
KINDS = ("livekit.outputs.mermaid", "livekit.outputs.vegalite")


@functools.cache
def kinds() -> tuple[ModuleType, ...]:
    """Return the module of every kind of output, imported on first use.

    Each has ``MIME_TYPES``, ``VENDORED`` (its vendored scripts, in load
    order), ``BOOT`` (livekit's script that draws it on a page),
    ``RenderPlugin`` (myst-nb) and ``drawn_on(doctree)`` (Sphinx).

    Examples
    --------
    >>> [kind.MIME_TYPES[0] for kind in kinds()]
    ['text/vnd.mermaid', 'application/vnd.vegalite.v6+json']
    """
    return tuple(importlib.import_module(name) for name in KINDS)


def vendored() -> tuple[_assets.Asset, ...]:
    """Return every kind's vendored assets: what ``python -m livekit.outputs`` downloads.

    Examples
    --------
    >>> [asset.package for asset in vendored()]
    ['mermaid', 'vega', 'vega-lite', 'vega-embed']
    """
    return tuple(asset for kind in kinds() for asset in kind.VENDORED)
