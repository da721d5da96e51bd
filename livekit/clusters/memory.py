"""The live memory chart of a cluster's workers: one line per worker.

Dask's dashboard shows each worker's memory as it is now; this chart keeps
it over time.  A :func:`livekit.listen <livekit.widgets.listen>` loop
asks the scheduler once per sample (:meth:`Cluster.memory
<livekit.Cluster.memory>`, one round trip whatever the number of
workers) and pushes one point per worker.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from livekit.widgets import VegaLite
from livekit.widgets.listeners import Listener, listen

if TYPE_CHECKING:
    from livekit.clusters.core import Cluster

_MB = 1e6


class MemoryChart(VegaLite):
    """A live chart fed by a listener; ``stop()`` ends the feed.

    A :class:`livekit.VegaLite <livekit.widgets.VegaLite>` like any other.

    Attributes
    ----------
    listener
        The :func:`livekit.listen <livekit.widgets.listen>` loop that samples the cluster.
    """

    listener: Listener

    def stop(self) -> bool:
        """Stop sampling (the chart keeps its points); True once stopped."""
        return self.listener.stop()


def memory_chart_spec() -> dict[str, Any]:
    """The Vega-Lite spec that the live chart draws: RSS per worker over time.

    A plain spec, not an Altair chart: importing Altair takes longer than
    everything else a cluster page does.

    Examples
    --------
    >>> spec = memory_chart_spec()
    >>> spec["encoding"]["color"]["field"], spec["encoding"]["y"]["field"]
    ('worker', 'total')
    """
    tooltip = [("worker", "nominal")] + [
        (field, "quantitative") for field in ("seconds", "total", "managed", "unmanaged", "spilled")
    ]
    return {
        # Names the Vega-Lite version (vega-embed reads it; nothing is fetched).
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": "Memory of each Dask worker",
        "description": "One line per Dask worker: its process memory (RSS) in megabytes, "
        "sampled by livekit from the scheduler.",
        "width": 440,
        "height": 240,
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "seconds", "type": "quantitative", "title": "Seconds since it started"},
            "y": {"field": "total", "type": "quantitative", "title": "Process memory, RSS (MB)"},
            "color": {"field": "worker", "type": "nominal", "title": "Worker"},
            "tooltip": [{"field": field, "type": kind} for field, kind in tooltip],
        },
    }


def rows(usage: dict[str, dict[str, int]], seconds: float) -> list[dict[str, Any]]:
    """One chart point per worker, in megabytes.

    Examples
    --------
    >>> (point,) = rows({"tcp://a:1": {"total": 50_000_000, "managed": 1_000_000,
    ...                                "unmanaged": 49_000_000, "spilled": 0}}, 2.0)
    >>> point["seconds"], point["worker"], point["total"], point["managed"]
    (2.0, 'tcp://a:1', 50.0, 1.0)
    """
    return [
        {
            "seconds": round(seconds, 2),
            "worker": address,
            **{kind: round(n / _MB, 1) for kind, n in numbers.items()},
        }
        for address, numbers in sorted(usage.items())
    ]


def chart_for(cluster: Cluster, *, every: float, window: int) -> tuple[MemoryChart, Listener]:
    """Make the chart and start the listener that feeds it."""
    if isinstance(every, bool) or not isinstance(every, int | float):
        raise TypeError(f"expected every as seconds, got {type(every).__name__}: {every!r}")
    if not (every > 0 and math.isfinite(every)):
        raise ValueError(f"expected every to be a number of seconds > 0, got {every!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"expected window to be a number of samples >= 1, got {window!r}")
    plot = MemoryChart(memory_chart_spec())
    started = time.monotonic()

    def sample(_: int) -> None:
        if not cluster.usable:
            return  # closing: the next tick ends the loop
        points = rows(cluster.memory(), time.monotonic() - started)
        plot.push_many(points, window=window * max(1, len(points)))

    plot.listener = listen(cluster.ticks(float(every)), sample)
    return plot, plot.listener
