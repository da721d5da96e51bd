"""tox's inline plugin: `.ci/sid`'s "cannot run here" becomes a skip.

`.ci/sid` exits 77 (automake's code for a skipped test) with one line
saying why, when the machine cannot make its Debian root: not root, or
no debootstrap.  Locally the `sid` env is then reported as skipped, the
way tox reports a missing interpreter; under CI=true it stays a failure,
as a missing interpreter does there.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tox.plugin import impl
from tox.tox_env.errors import Skip

if TYPE_CHECKING:
    from tox.execute.api import Outcome
    from tox.tox_env.api import ToxEnv

CANNOT_RUN = 77


@impl
def tox_after_run_commands(tox_env: ToxEnv, exit_code: int, outcomes: list[Outcome]) -> None:
    if tox_env.name == "sid" and exit_code == CANNOT_RUN and os.environ.get("CI") != "true":
        reason = outcomes[-1].err.strip().splitlines()[-1] if outcomes and outcomes[-1].err else ""
        raise Skip(reason or ".ci/sid cannot run on this machine")
