"""Displaying a diagram costs little next to making its source text.

Baseline: joining the lines of a 1,000-arrow sequence diagram into a string.
livekit: building the Mermaid value from those lines and asking it for its
MIME bundle, which is what a notebook does for each output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import best_of, row, table

from livekit import Mermaid

LINES = ["sequenceDiagram"] + [f"    a->>b: message {i}" for i in range(1000)]


def main() -> list[dict[str, Any]]:
    baseline = best_of(lambda: "\n".join(LINES), repeat=7, number=200)
    livekit = best_of(lambda: Mermaid("\n".join(LINES))._repr_mimebundle_(), repeat=7, number=200)
    return [
        row(
            "Mermaid bundle of a 1,000-arrow diagram",
            livekit,
            baseline,
            3.0,
            "vs joining its lines",
        )
    ]


if __name__ == "__main__":
    print(table(main())[0])
