"""Startup file of every kernel that executes a page of a livekit book.

:mod:`livekit.sphinxext` points ``PYTHONSTARTUP`` here; IPython kernels run
that file before the first cell.  Importing livekit enables its offline
Altair renderer (:func:`livekit._display.enable_book_renderer`), so a page
that draws an Altair chart without importing livekit still draws offline
instead of loading vega from a CDN.  Nothing is left in the page's
namespace: a page must still import what it uses.
"""

import livekit as _livekit

del _livekit
