"""The book build's kernels listen on private Unix sockets, not TCP ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from livekit import _book_kernels

# Starts a kernel as myst-nb's nbclient does, in a process of its own (the
# provisioner factory reads its default name once per process).
START_A_KERNEL = textwrap.dedent(
    """
    import asyncio, json, os, stat, sys
    from pathlib import Path
    from jupyter_client.manager import AsyncKernelManager

    async def main():
        printed = []
        km = AsyncKernelManager(kernel_name="python3")
        await km.start_kernel(cwd=sys.argv[1])
        try:
            client = km.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive(
                "import sys; print(sys.modules.get('debugpy'), type(get_ipython()).__name__)",
                output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
                timeout=60,
            )
            client.stop_channels()
            info = km.get_connection_info()
            folder = Path(str(info["ip"])).parent
            mode = stat.S_IMODE(folder.stat().st_mode)
        finally:
            await km.shutdown_kernel(now=True)
        return {"transport": info["transport"], "folder": str(folder), "mode": mode,
                "left": folder.exists(), "provisioner": type(km.provisioner).__name__,
                "status": reply["content"]["status"], "printed": "".join(printed)}

    print(json.dumps(asyncio.run(main())))
    """
)


def test_a_book_kernel_listens_on_unix_sockets_in_a_private_folder(tmp_path: Path) -> None:
    # What livekit.sphinxext sets for a book build.
    env = {**os.environ, "JUPYTER_DEFAULT_PROVISIONER_NAME": _book_kernels.NAME}
    result = subprocess.run(
        [sys.executable, "-c", START_A_KERNEL, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kernel = json.loads(result.stdout)
    assert kernel["provisioner"] == "IpcProvisioner"
    assert kernel["transport"] == "ipc"
    assert kernel["mode"] == 0o700
    assert kernel["left"] is False  # the folder goes with the kernel
    assert "without encryption" not in result.stderr
    # An IPython kernel that runs the cell, without loading the debugger.
    assert kernel["status"] == "ok"
    assert kernel["printed"] == "None ZMQInteractiveShell\n"
