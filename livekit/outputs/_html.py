"""What every kind of output shares: its figure, its page boot, its bundle filter."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from livekit import _assets

#: Sphinx builders whose pages draw livekit's outputs.
BUILDERS = ("html", "dirhtml", "singlehtml")

#: The script every page that shows an output loads first: theme following,
#: copy and download buttons, ARIA labels, and the table of kinds that
#: ``livekit-live.js`` draws live outputs with.
PAGE_BOOT = _assets.Asset("", "", "livekit-page.js")


def aria_label(caption: str | None) -> str:
    """Return an ``aria-label`` attribute (with its leading space), or nothing.

    Examples
    --------
    >>> aria_label('a "b"'), aria_label(None)
    (' aria-label="a &quot;b&quot;"', '')
    """
    return f' aria-label="{html.escape(caption)}"' if caption else ""


def figure(kind: str, body: str, caption: str | None, *, labelled: bool = False) -> str:
    """Return the ``<figure>`` of class ``kind`` around ``body``, with its caption.

    ``labelled`` puts the caption on the figure as its ``aria-label`` too.

    Examples
    --------
    >>> print(figure("livekit-x", "<p>x</p>", "An <x>", labelled=True))
    <figure class="livekit-x" aria-label="An &lt;x&gt;">
    <p>x</p>
    <figcaption>An &lt;x&gt;</figcaption>
    </figure>
    """
    label = aria_label(caption) if labelled else ""
    figcaption = f"\n<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure class="{kind}"{label}>\n{body}{figcaption}\n</figure>'


def boot_scripts(boot: _assets.Asset) -> str:
    """Return the page boot and a kind's own boot script, inlined, in that order.

    Examples
    --------
    >>> from livekit.outputs import mermaid
    >>> scripts = boot_scripts(mermaid.BOOT)
    >>> scripts.index("window.livekitPage =") < scripts.index("window.livekitMermaid =")
    True
    """
    return "\n".join(_assets.inline_script(_assets.read(script)) for script in (PAGE_BOOT, boot))


def caption_of(metadata: dict[str, Any], mime_type: str) -> str | None:
    """Return the caption an output's metadata holds for ``mime_type``, or None.

    Examples
    --------
    >>> caption_of({"text/vnd.mermaid": {"caption": "c"}}, "text/vnd.mermaid")
    'c'
    """
    value = (metadata.get(mime_type) or {}).get("caption")
    return value if isinstance(value, str) and value else None


def filter_bundle(
    bundle: dict[str, Any], include: Iterable[str] | None, exclude: Iterable[str] | None
) -> dict[str, Any]:
    """Honour IPython's include/exclude arguments to ``_repr_mimebundle_``.

    Examples
    --------
    >>> filter_bundle({"a": 1, "b": 2, "c": 3}, include=["a", "b"], exclude=["b"])
    {'a': 1}
    """
    if include is not None:
        wanted = set(include)
        bundle = {k: v for k, v in bundle.items() if k in wanted}
    if exclude is not None:
        unwanted = set(exclude)
        bundle = {k: v for k, v in bundle.items() if k not in unwanted}
    return bundle
