"""Keep the doctests of livekit.nodes away from the real ``~/.livekit``.

Each doctest gets its own livekit home, and whatever node or link it
started is stopped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from livekit.nodes import client, cookie, local

    monkeypatch.setenv("LIVEKIT_HOME", str(tmp_path / "livekit-home"))
    cookie._reset()
    yield
    local.stop_node()
    client.disconnect_all()
    cookie._reset()
