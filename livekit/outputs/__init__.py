"""The kinds of output livekit shows, one module each.

Each kind owns everything about showing itself: its MIME type, its bundle
for each front end (:func:`livekit._display.host` says which one is
showing it), its figure HTML, its vendored JavaScript and its myst-nb
plugin.

* :mod:`livekit.outputs.mermaid`: diagrams (sequence traces, trees);
* :mod:`livekit.outputs.vegalite`: Vega-Lite charts, static and live.

The Sphinx extension and the myst-nb plugin loop over :data:`KINDS` rather
than naming each kind.
"""
