"""The sort order of every list in a tree: ``worker_2`` before ``worker_10``."""

from __future__ import annotations

import re
from typing import Any


def natural(text: str) -> list[Any]:
    """Sort key that puts ``worker_2`` before ``worker_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
