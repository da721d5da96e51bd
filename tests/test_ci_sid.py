""".ci/sid, which runs the py314 and py315 envs inside a Debian sid root.

What a machine that cannot make the root sees: one line saying why and
exit status 77, which tox reports as a skip (toxfile.py) and CI as a
failure.  That the root itself works is shown by the py314 and py315 envs,
which run inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require

SID = Path(__file__).resolve().parent.parent / ".ci" / "sid"
CANNOT_RUN = 77


def run_sid(*prefix: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, "bash", str(SID), "true"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_without_root_it_says_why_in_one_line_and_exits_77() -> None:
    if os.geteuid() == 0:
        require(shutil.which("setpriv") is not None, "setpriv (util-linux) is not installed")
        result = run_sid("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    else:
        result = run_sid()
    assert (result.returncode, result.stdout) == (CANNOT_RUN, "")
    assert result.stderr == (
        "sid: cannot run Python 3.14/3.15 here: needs root (debootstrap, chroot and mount)\n"
    )


def test_without_debootstrap_and_a_root_it_says_why_and_makes_nothing(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "only root gets as far as looking for debootstrap")
    root = tmp_path / "sid-root"
    # /usr/sbin, where Debian puts debootstrap, is left off the PATH.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LIVEKIT_SID_ROOT": str(root)}
    result = run_sid(env=env)
    assert (result.returncode, result.stdout) == (CANNOT_RUN, "")
    assert result.stderr == (
        "sid: cannot run Python 3.14/3.15 here: debootstrap is not installed "
        f"(apt-get install debootstrap) and {root} does not exist\n"
    )
    assert not root.exists()
