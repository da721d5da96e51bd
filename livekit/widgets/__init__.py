"""Live widgets: a chart that grows as Python pushes points, inputs, listeners.

* :class:`VegaLite`: a live Vega-Lite chart (``Kino.VegaLite``);
* :func:`listen`: call a function every so often, supervised (``Kino.listen``);
* :class:`Text`: a text input whose value lives in Python (behind
  :func:`livekit.shorts.read_text`).

A widget's state lives in Python.  Whatever shows it (an anywidget view in
JupyterLab or VS Code, or a page of the book served by ``livekit serve``)
is a *front end* that talks to it with the small JSON protocol below.  The
same ES module, ``livekit/static/livekit-widget.js``, draws every widget in
both places; it relies only on ``render({model, el})``, ``model.send(msg)``
and ``model.on("msg:custom", callback)`` (and ``model.off`` if present).

Protocol
--------
Every message is a JSON object with a ``"type"``.

Front end to Python:

``{"type": "ready"}``
    Sent by a view once it can draw.  Python answers with ``replay``; it
    sends nothing to a front end before this.  A reloaded page simply
    says ``ready`` again.
``{"type": "ack", "seq": n}``
    The view has taken every message up to sequence number ``n``: applied
    it, or merged it into what it draws next (livekit-widget.js answers as
    each message arrives).  Python keeps at most ``IN_FLIGHT`` (3)
    messages unacknowledged (flow control), and sends anyway after
    ``STALL`` (0.25) seconds without an ack.
``{"type": "assets"}``
    The page has no vega: Python answers with ``assets``.  A view asks at
    most once per page.
``{"type": "input", "value": "..."}``
    (text inputs) what the reader typed.

Python to front end (every one but ``assets`` carries ``"seq": n``,
counting up from 1 per connection):

``{"type": "replay", "kind": "vegalite", "spec": {...}, "empty": {...}, "datasets": {...}}``
    The whole state: draw ``spec`` if not drawn yet, then make each named
    Vega dataset hold exactly its rows (``datasets`` maps names to rows).
    ``spec`` declares every dataset (empty) in its top-level ``datasets``,
    so each keeps its name.
    ``empty`` is the chart to draw instead while every dataset is empty
    (:func:`~livekit.widgets.vegalite.empty_state`: no Vega warnings, "No
    data yet"); a front end may ignore it.
``{"type": "push", "dataset": name, "rows": [...], "window": n}``
    Insert ``rows`` at the end of the dataset, then keep only its last
    ``n`` rows: ``n`` is the dataset's length in Python afterwards, so a
    front end that applies messages in order holds exactly Python's data,
    however many pushes a message stands for.
``{"type": "clear", "dataset": name}``
    Remove every row of the dataset.
``{"type": "replay", "kind": "text", "label": "...", "value": "..."}``
    Draw a text input.
``{"type": "assets", "scripts": [vega, vega-lite, vega-embed]}``
    The vendored libraries' source, to run as classic scripts in order.

Server-side API, for a relay such as ``livekit serve``::

    connection = widget.attach(send)   # send(msg: dict) -> None, non-blocking
    connection.handle(msg)             # each message from that front end
    connection.detach()                # when it goes away

A fast producer never builds a queue: while a front end has not
acknowledged enough, changes are only marked, and the next message is
computed from the widget's data when it leaves (at most ``window`` rows
per dataset).
"""

from __future__ import annotations

from livekit.widgets._live import Connection, LiveWidget
from livekit.widgets.inputs import Text
from livekit.widgets.listeners import Listener, listen
from livekit.widgets.vegalite import VegaLite

__all__ = ["Connection", "Listener", "LiveWidget", "Text", "VegaLite", "listen"]
