"""A live Vega-Lite chart: push points from Python, watch them arrive.

The Python counterpart of ``Kino.VegaLite``.  The chart's data lives here,
in Python, trimmed to each push's ``window``; a browser gets changesets
(rows to insert, how many to keep) and a browser that connects late gets
the whole data first.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from livekit.outputs.vegalite import vegalite_bundle
from livekit.widgets._live import Connection, LiveWidget, Message

#: The dataset that pushes go to when the chart names none of its own.
DEFAULT_DATASET = "livekit"

#: What a chart with no points yet says, under its title.
NO_DATA = "No data yet"

#: Channels whose scale Vega computes from the data: with no data, their
#: extent is [Infinity, -Infinity] and Vega warns ("Infinite extent for
#: field ...") once per field.  Positions get an axis, the rest a legend.
_POSITION_CHANNELS = ("x", "y", "theta", "radius")
_LEGEND_CHANNELS = (
    "color",
    "fill",
    "stroke",
    "size",
    "opacity",
    "fillOpacity",
    "strokeOpacity",
    "strokeWidth",
    "angle",
)
_CONTINUOUS = frozenset({"quantitative", "temporal"})


class VegaLite(LiveWidget):
    """A live chart over an Altair chart or a Vega-Lite spec.

    Parameters
    ----------
    chart
        An Altair chart (anything with ``to_dict()``) or a Vega-Lite spec
        as a dict.  Its data, if it has some inline, is where pushes start
        from; a chart with no data gets an empty dataset to push into.

    Notes
    -----
    Pushes go to the chart's top-level dataset unless ``dataset`` names
    another one: a name the spec uses in a ``{"name": ...}`` data
    reference (a layer, say) or in its top-level ``datasets``.

    In JupyterLab and VS Code the chart is an anywidget that updates
    without re-drawing.  In the book it is a static chart holding the
    points it had when the last cell ended.  In a terminal, ``repr`` says
    how many points it holds.

    Examples
    --------
    >>> import altair as alt
    >>> chart = alt.Chart(title="Memory").mark_line().encode(x="i:Q", y="mb:Q")
    >>> plot = VegaLite(chart)
    >>> for i in range(5):
    ...     plot.push({"i": i, "mb": 10 + i}, window=3)
    >>> plot.data()
    [{'i': 2, 'mb': 12}, {'i': 3, 'mb': 13}, {'i': 4, 'mb': 14}]
    >>> plot
    <VegaLite 'Memory': 3 points>
    >>> plot.clear()
    >>> plot.data()
    []
    """

    kind = "vegalite"

    def __init__(self, chart: Any) -> None:
        super().__init__()
        spec = _spec_of(chart)
        self._spec, self._default, initial = _prepare(spec)
        self._empty_spec = empty_state(self._spec)
        self._datasets: dict[str, deque[dict[str, Any]]] = {
            name: deque(rows) for name, rows in initial.items()
        }
        self._title = _title(spec)

    def __repr__(self) -> str:
        with self._lock:
            count = sum(len(rows) for rows in self._datasets.values())
        title = f" {self._title!r}" if self._title else ""
        return f"<VegaLite{title}: {count} point{'s' if count != 1 else ''}>"

    @property
    def spec(self) -> dict[str, Any]:
        """The chart's Vega-Lite spec, with its data as it is now."""
        return self._static_spec()

    def push(
        self,
        point: Mapping[str, Any],
        *,
        window: int | None = None,
        dataset: str | None = None,
    ) -> None:
        """Add one point to the chart.

        Parameters
        ----------
        point
            A mapping of field names to JSON values, such as
            ``{"iter": 3, "total": 41.5}``.
        window
            Keep only the last ``window`` points of the dataset after this
            push (Kino's ``window:``); None keeps them all.
        dataset
            The dataset to push into; None for the chart's own data.

        Examples
        --------
        >>> plot = VegaLite({"mark": "point"})
        >>> plot.push({"x": 1})
        >>> plot.push([("x", 2)])
        Traceback (most recent call last):
        ...
        TypeError: expected a point as a mapping such as a dict, got list: [('x', 2)]
        """
        self.push_many((point,), window=window, dataset=dataset)

    def push_many(
        self,
        points: Iterable[Mapping[str, Any]],
        *,
        window: int | None = None,
        dataset: str | None = None,
    ) -> None:
        """Add many points at once; see :meth:`push`.

        All the points are checked before any is added.

        Examples
        --------
        >>> plot = VegaLite({"mark": "point"})
        >>> plot.push_many([{"x": i} for i in range(10)], window=2)
        >>> plot.data()
        [{'x': 8}, {'x': 9}]
        >>> plot.push({"x": 10}, window=-1)
        Traceback (most recent call last):
        ...
        ValueError: expected window to be None or an int >= 0, got -1
        """
        if isinstance(points, Mapping) or not isinstance(points, Iterable):
            raise TypeError(
                f"expected an iterable of points, got {type(points).__name__}: {points!r}"
            )
        if window is not None and (
            not isinstance(window, int) or isinstance(window, bool) or window < 0
        ):
            raise ValueError(f"expected window to be None or an int >= 0, got {window!r}")
        rows = [_row(point) for point in points]
        with self._lock:
            name = self._dataset(dataset)
            data = self._datasets.setdefault(name, deque())
            if window is not None and len(rows) > window:
                rows = rows[len(rows) - window :] if window else []
            data.extend(rows)
            if window is not None:
                for _ in range(len(data) - window):
                    data.popleft()
            for connection in self._connections:
                mark = connection.pending.setdefault(name, [False, 0])
                mark[1] += len(rows)
            self._changed()

    def clear(self, *, dataset: str | None = None) -> None:
        """Remove every point of a dataset (the chart's own by default).

        Examples
        --------
        >>> plot = VegaLite({"mark": "point"})
        >>> plot.clear(dataset="elsewhere")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset 'elsewhere'; this chart has 'livekit'
        """
        with self._lock:
            name = self._dataset(dataset)
            self._datasets.setdefault(name, deque()).clear()
            for connection in self._connections:
                connection.pending[name] = [True, 0]
            self._changed()

    def data(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """Return a copy of a dataset's points, oldest first.

        Examples
        --------
        >>> plot = VegaLite({"data": {"values": [{"x": 1}]}, "mark": "point"})
        >>> plot.data()
        [{'x': 1}]
        """
        with self._lock:
            name = self._dataset(dataset)
            return [dict(row) for row in self._datasets.get(name, ())]

    # ── LiveWidget hooks ──

    def _dataset(self, dataset: str | None) -> str:
        if dataset is None:
            if self._default is None:
                raise ValueError(
                    "this chart reads its data from elsewhere (a URL or a generator); "
                    "push to a named dataset instead"
                )
            return self._default
        if not isinstance(dataset, str):
            raise TypeError(
                f"expected dataset to be None or a str, got {type(dataset).__name__}: {dataset!r}"
            )
        if dataset not in self._datasets:
            known = ", ".join(repr(name) for name in self._datasets) or "no datasets"
            raise ValueError(f"unknown dataset {dataset!r}; this chart has {known}")
        return dataset

    def _replay(self) -> Message:
        return {
            "type": "replay",
            "kind": self.kind,
            "spec": self._spec,
            "empty": self._empty_spec,
            "datasets": {name: list(rows) for name, rows in self._datasets.items()},
        }

    def _changes(self, connection: Connection) -> list[Message]:
        messages: list[Message] = []
        for name, (cleared, added) in connection.pending.items():
            rows = self._datasets[name]
            if cleared:
                messages.append({"type": "clear", "dataset": name})
            count = min(added, len(rows))
            if count or not cleared:
                # The client has what the server had at the last message; the
                # server's rows are a suffix of that plus the new ones, so
                # sending the new rows still held and the resulting length is
                # exact, however many pushes were coalesced.
                messages.append(
                    {
                        "type": "push",
                        "dataset": name,
                        "rows": list(islice(rows, len(rows) - count, None)),
                        "window": len(rows),
                    }
                )
        return messages

    def _static_spec(self) -> dict[str, Any]:
        with self._lock:
            spec = dict(self._spec)
            spec["datasets"] = {name: list(rows) for name, rows in self._datasets.items()}
        return spec

    def _static_bundle(self) -> dict[str, Any]:
        with self._lock:
            empty = not any(self._datasets.values())
        return vegalite_bundle(self._empty_spec if empty else self._static_spec())


def empty_state(spec: dict[str, Any]) -> dict[str, Any]:
    """Return how a chart looks before its first point: no warnings, a note.

    Vega computes a continuous scale's domain from the data; with no data it
    is [Infinity, -Infinity], Vega warns once per field, and the axis shows a
    lone ``0.000000``.  The empty state gives each such scale the domain
    [0, 1] and hides what it would make up (axis labels and ticks, legends),
    and says ``NO_DATA`` ("No data yet") under the title.  Scales with a domain of their
    own keep it, with their labels.  A live chart shows it until its first
    point arrives, and again after :meth:`~livekit.widgets.VegaLite.clear`.

    Examples
    --------
    >>> spec = {
    ...     "title": "Memory",
    ...     "mark": "line",
    ...     "encoding": {
    ...         "x": {"field": "i", "type": "quantitative"},
    ...         "y": {"field": "mb", "type": "quantitative", "scale": {"domain": [0, 64]}},
    ...         "color": {"field": "kind", "type": "nominal"},
    ...     },
    ... }
    >>> empty = empty_state(spec)
    >>> empty["title"]
    {'text': 'Memory', 'subtitle': 'No data yet'}
    >>> x = empty["encoding"]["x"]
    >>> x["scale"], x["axis"]
    ({'domain': [0, 1]}, {'labels': False, 'ticks': False})
    >>> [empty["encoding"][c] == spec["encoding"][c] for c in ("y", "color")]
    [True, True]
    """
    empty = copy.deepcopy(spec)
    _quiet_scales(empty)
    title = empty.get("title")
    if isinstance(title, dict):
        title = {**title, "subtitle": title.get("subtitle") or NO_DATA}
    elif isinstance(title, str | list) and title:
        title = {"text": title, "subtitle": NO_DATA}
    else:
        title = {"text": NO_DATA, "fontWeight": "normal"}
    empty["title"] = title
    return empty


def _quiet_scales(node: Any) -> None:
    """Give every data-driven continuous scale in a spec a fixed domain."""
    if isinstance(node, list):
        for item in node:
            _quiet_scales(item)
        return
    if not isinstance(node, dict):
        return
    encoding = node.get("encoding")
    if isinstance(encoding, dict):
        for channel in (*_POSITION_CHANNELS, *_LEGEND_CHANNELS):
            definition = encoding.get(channel)
            if isinstance(definition, dict) and _data_driven(definition):
                guide = "axis" if channel in _POSITION_CHANNELS else "legend"
                encoding[channel] = _quiet(definition, guide)
    for key, value in node.items():
        if key not in {"encoding", "datasets", "data"}:
            _quiet_scales(value)


def _data_driven(definition: Any) -> bool:
    if not isinstance(definition, dict) or definition.get("type") not in _CONTINUOUS:
        return False
    if "field" not in definition and "aggregate" not in definition:
        return False  # a datum or a value: no data extent
    scale = definition.get("scale")
    if scale is None and "scale" in definition:
        return False  # scale: null, no scale at all
    return not (isinstance(scale, dict) and "domain" in scale)


def _quiet(definition: dict[str, Any], guide: str) -> dict[str, Any]:
    quiet = {**definition, "scale": {**(definition.get("scale") or {}), "domain": [0, 1]}}
    if guide == "legend":
        quiet["legend"] = None
    elif definition.get(guide, {}) is not None:
        quiet[guide] = {**(definition.get(guide) or {}), "labels": False, "ticks": False}
    return quiet


def _spec_of(chart: Any) -> dict[str, Any]:
    if isinstance(chart, dict):
        spec: dict[str, Any] = json.loads(json.dumps(chart))  # a deep, plain-JSON copy
        return spec
    to_dict = getattr(chart, "to_dict", None)
    if callable(to_dict) and type(chart).__module__.startswith("altair"):
        converted = to_dict()
        if isinstance(converted, dict):
            return converted
    raise TypeError(
        f"expected an Altair chart or a Vega-Lite spec dict, got {type(chart).__name__}: {chart!r}"
    )


def _prepare(
    spec: dict[str, Any],
) -> tuple[dict[str, Any], str | None, dict[str, list[dict[str, Any]]]]:
    """Split a spec into a data-less template, its default dataset, its data."""
    spec = copy.deepcopy(spec)
    initial: dict[str, list[dict[str, Any]]] = {
        name: [_row(row) for row in rows]
        for name, rows in (spec.get("datasets") or {}).items()
        if isinstance(rows, list)
    }
    if initial.get("empty") == [{}]:
        # Altair gives a chart made without data one empty row, to draw a
        # single mark; a live chart starts with no points instead.
        initial["empty"] = []
    data = spec.get("data")
    default: str | None
    named = list(dict.fromkeys(_named_data(spec)))
    if data is None and len(named) == 1:
        # One dataset, named inside (Altair puts a repeated chart's data in
        # its inner spec): pushes go there.
        default = named[0]
    elif data is None:
        spec["data"] = {"name": DEFAULT_DATASET}
        default = DEFAULT_DATASET
    elif isinstance(data, dict) and isinstance(data.get("name"), str):
        default = data["name"]
    elif isinstance(data, dict) and isinstance(data.get("values"), list):
        initial[DEFAULT_DATASET] = [_row(row) for row in data["values"]]
        spec["data"] = {"name": DEFAULT_DATASET, **{k: v for k, v in data.items() if k != "values"}}
        default = DEFAULT_DATASET
    else:
        default = None
    for name in named:
        initial.setdefault(name, [])
    if default is not None:
        initial.setdefault(default, [])
    # Every dataset is declared (empty) so that Vega-Lite keeps its name,
    # which is how changesets find it; the rows travel separately.
    spec["datasets"] = {name: [] for name in initial}
    return spec, default, initial


def _named_data(node: Any) -> list[str]:
    """Names of every ``{"data": {"name": ...}}`` reference in a spec."""
    names: list[str] = []
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            names.append(data["name"])
        for key, value in node.items():
            if key != "datasets":
                names.extend(_named_data(value))
    elif isinstance(node, list):
        for item in node:
            names.extend(_named_data(item))
    return names


def _row(point: Any) -> dict[str, Any]:
    if not isinstance(point, Mapping):
        raise TypeError(
            f"expected a point as a mapping such as a dict, got {type(point).__name__}: {point!r}"
        )
    return dict(point)


def _title(spec: dict[str, Any]) -> str | None:
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    return title if isinstance(title, str) and title else None
