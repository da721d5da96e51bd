"""``python -m livekit.outputs``: refresh every kind's vendored scripts from npm."""

from livekit import _assets
from livekit.outputs import vendored

if __name__ == "__main__":
    _assets.refresh(vendored())
