"""Startup file of every kernel that executes a page of a livekit book.

:mod:`livekit.sphinxext` points ``PYTHONSTARTUP`` here; IPython kernels run
that file before the first cell.  Importing livekit enables its offline
Altair renderer (:func:`livekit._display.enable_book_renderer`), so a page
that draws an Altair chart without importing livekit still draws offline
instead of loading vega from a CDN.  Nothing is left in the page's
namespace: a page must still import what it uses.

It also keeps ``rfc3987_syntax`` out of the kernel.  jsonschema imports it,
where it is installed, for its ``iri`` and ``iri-reference`` format checks,
and it builds an Earley parser of RFC 3987 at import: 1.5-3 CPU-seconds in
every kernel whose page imports Altair (Altair imports jsonschema).  It is
there only when something asked for ``jsonschema[format-nongpl]``
(JupyterLab's jupyter-events does, in the test environment), not with the
book's own tools (``tox -e docs``), and no Vega-Lite schema uses either
format.  Without it jsonschema skips those two formats, as it does in a
``tox -e docs`` build, so a page draws the same wherever it is built.
"""

import sys as _sys

# None in sys.modules makes `import rfc3987_syntax` raise ImportError, which
# jsonschema expects from a package that is not installed.
if "rfc3987_syntax" not in _sys.modules:
    _sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]

import livekit as _livekit

del _livekit, _sys
