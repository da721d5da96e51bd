"""Keep the doctests of livekit.attaching away from the real ``~/.livekit``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from livekit.nodes import client, cookie

    monkeypatch.setenv("LIVEKIT_HOME", str(tmp_path / "livekit-home"))
    cookie._reset()
    yield
    client.disconnect_all()
    cookie._reset()
