"""One page's session: an IPython kernel process that runs the page's cells.

Each live page gets its own kernel, started through jupyter_client with
ipykernel, the same pair the book build uses.  That brings interrupt,
restart and rich outputs with no new code, and widgets work as they do in
Jupyter: their comm messages are relayed to the page as they are.  The
session only turns the kernel's messages into small JSON events for the
page (see :data:`livekit.kernel.session.EVENTS`) and runs cells one after another.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from livekit import _display
from livekit.kernel.book import Cell

Emit = Callable[[dict[str, Any]], None]

#: The events a session sends to its page, by ``type``.
EVENTS = {
    "status": "the kernel is starting, busy, idle, dead or restarting (``state``)",
    "cell_start": "a cell began running: clear its outputs (``cell``)",
    "output": "a Jupyter output of a cell (``cell``, ``output`` as in nbformat)",
    "clear_output": "the cell asked to clear its outputs (``cell``, ``wait``)",
    "cell_done": "a cell finished (``cell``, ``status``: ok, error or cancelled)",
    "comm_open": "a widget was created (``comm_id``, ``target_name``, ``data``, ``cell``)",
    "comm_msg": "a widget update (``comm_id``, ``data``)",
    "comm_close": "a widget went away (``comm_id``)",
}

#: Kernel message types relayed to the page as cell outputs.
_OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "execute_result", "error", "update_display_data"}
)

#: Run in each kernel before the page's cells: charts draw offline, with
#: livekit's Altair renderer as in the book (Altair's default loads vega
#: from a CDN), while widgets stay live (this is not the book).
_BOOTSTRAP = """
try:
    import altair

    altair.renderers.enable("livekit")
except Exception:
    pass
"""


def _forget_dead_nodes() -> None:
    """Remove the registry entries of nodes that died, such as a kernel just killed.

    A kernel is stopped with SIGKILL, which its node cannot catch: if the
    page made it a node, its entry and Unix socket would stay behind.
    """
    from livekit.nodes import registry

    with contextlib.suppress(OSError):  # an unsafe home is refused where nodes start
        registry.prune()


#: How many finished executions keep their cell number, for late outputs of
#: threads a cell started (a listener's prints).
_REMEMBERED = 1024


class Session(Protocol):
    """What the server needs from a page session.

    :class:`KernelSession` is the real one; tests pass fakes.
    """

    ran: set[int]

    async def start(self) -> None: ...

    def run(self, cells: list[Cell]) -> None: ...

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> int | None: ...

    async def interrupt(self) -> None: ...

    async def restart(self) -> None: ...

    async def close(self) -> None: ...


SessionFactory = Callable[[Path, Emit], Session]


class KernelSession:
    """A page's cells running in their own ipykernel process.

    Parameters
    ----------
    cwd
        The folder the kernel runs in: the page's folder, as in the build.
    emit
        Called with each event for the page (see :data:`livekit.kernel.session.EVENTS`).
    kernel_name
        The Jupyter kernel spec to start.
    startup_timeout
        Seconds to wait for the kernel to answer.

    Examples
    --------
    >>> session = KernelSession(Path("."), print)
    >>> session.ran
    set()
    """

    def __init__(
        self,
        cwd: Path,
        emit: Callable[[dict[str, Any]], None],
        *,
        kernel_name: str = "python3",
        startup_timeout: float = 60.0,
    ) -> None:
        self.cwd = cwd
        self.ran: set[int] = set()
        self._emit = emit
        self._kernel_name = kernel_name
        self._startup_timeout = startup_timeout
        # (request number, cell): a failed cell cancels the cells queued by
        # its own request and earlier ones, not those of a newer request.
        self._queue: collections.deque[tuple[int, Cell]] = collections.deque()
        self._requests = 0
        self._queued = asyncio.Event()
        self._pending: set[int] = set()
        self._cell_of: dict[str, int] = {}
        self._comm_cell: dict[str, int | None] = {}
        self._idle: dict[str, asyncio.Event] = {}
        self._errored: set[str] = set()
        self._dead = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._restarting = False
        self._km: Any = None
        self._sockets: Path | None = None
        self._kc: Any = None

    async def start(self) -> None:
        """Start the kernel and the tasks that read from it and feed it cells."""
        from jupyter_client.manager import AsyncKernelManager

        self._emit({"type": "status", "state": "starting"})
        env = {k: v for k, v in os.environ.items() if k != _display.BOOK_ENV}
        # Widgets show live forms (not the book's static ones) under serve.
        env["LIVEKIT_SERVE"] = "1"
        # IPC sockets in a private folder rather than TCP ports: no other user
        # of the machine can even reach the kernel (messages are also signed).
        self._sockets = Path(tempfile.mkdtemp(prefix="livekit-kernel-"))
        self._km = AsyncKernelManager(
            kernel_name=self._kernel_name, transport="ipc", ip=str(self._sockets / "kernel")
        )
        await self._km.start_kernel(env=env, cwd=str(self.cwd))
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._read_iopub()),
            asyncio.create_task(self._run_queue()),
            asyncio.create_task(self._watch()),
        ]

    async def _connect(self) -> None:
        self._kc = self._km.client()
        self._kc.start_channels()
        await self._kc.wait_for_ready(timeout=self._startup_timeout)
        # livekit's own start-up code, not the page's: silent, no outputs.
        self._kc.execute(_BOOTSTRAP, silent=True, store_history=False)
        self._dead.clear()
        self._emit({"type": "status", "state": "idle"})

    def run(self, cells: list[Cell]) -> None:
        """Queue ``cells`` to run, in order, after any already queued.

        A cell already waiting in the queue is not queued twice (a reader
        typing in an input asks for the same re-runs many times over), but
        it moves to its place in the new order.  Left where it was, it would
        run before the new run of the cell it reads, with the value of the
        previous keystroke, and never again.
        """
        again = {cell.index for cell in cells}
        if self._pending & again:
            kept = [entry for entry in self._queue if entry[1].index not in again]
            self._queue.clear()
            self._queue.extend(kept)
        self._requests += 1
        self._queue.extend((self._requests, cell) for cell in cells)
        self._pending = {cell.index for _, cell in self._queue}
        self._queued.set()

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> int | None:
        """Send a widget message from the page to the kernel.

        Returns the cell that created the widget (``None`` if unknown).
        """
        if comm_id not in self._comm_cell:
            raise LookupError(f"no widget {comm_id!r} in this session")
        msg = self._kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self._kc.shell_channel.send(msg)
        return self._comm_cell[comm_id]

    async def interrupt(self) -> None:
        """Interrupt the running cell (KeyboardInterrupt) and drop queued ones."""
        self._cancel_queued()
        await self._km.interrupt_kernel()

    async def restart(self) -> None:
        """Restart the kernel: a fresh namespace, no cell run yet."""
        self._restarting = True
        try:
            self._cancel_queued()
            self._emit({"type": "status", "state": "restarting"})
            self._dead.set()  # wakes a cell waiting on the old kernel
            self._kc.stop_channels()
            await self._km.restart_kernel(now=True)
            _forget_dead_nodes()
            self.ran.clear()
            self._comm_cell.clear()
            await self._connect()
            for task in self._tasks[:1]:
                task.cancel()
            self._tasks[0] = asyncio.create_task(self._read_iopub())
        finally:
            self._restarting = False

    async def close(self) -> None:
        """Stop the tasks and the kernel process (killed, not asked)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._kc is not None:
            self._kc.stop_channels()
        if self._km is not None and self._km.has_kernel:
            await self._km.shutdown_kernel(now=True)
        self._km = None
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None
        _forget_dead_nodes()

    def _cancel_queued(self, *, up_to: int | None = None) -> None:
        """Drop the queued cells (of requests up to ``up_to``, if given)."""
        kept = []
        while self._queue:
            request, cell = self._queue.popleft()
            if up_to is not None and request > up_to:
                kept.append((request, cell))
                continue
            self._pending.discard(cell.index)
            self._emit({"type": "cell_done", "cell": cell.index, "status": "cancelled"})
        self._queue.extend(kept)

    async def _run_queue(self) -> None:
        while True:
            while not self._queue:
                self._queued.clear()
                await self._queued.wait()
            request, cell = self._queue.popleft()
            self._pending.discard(cell.index)
            status = await self._execute(cell)
            self._emit({"type": "cell_done", "cell": cell.index, "status": status})
            if status == "cancelled" or (status == "error" and not cell.raises):
                # Later cells build on this one: do not run them on a broken
                # state.  A newer request (the reader typed on) runs this
                # cell again first, so it stays.
                self._cancel_queued(up_to=request)

    async def _execute(self, cell: Cell) -> str:
        if self._dead.is_set():
            return "cancelled"
        msg_id = self._send_execute(cell)
        self._remember(msg_id, cell.index)
        idle = self._idle[msg_id] = asyncio.Event()
        self._emit({"type": "cell_start", "cell": cell.index})
        idle_wait = asyncio.ensure_future(idle.wait())
        dead_wait = asyncio.ensure_future(self._dead.wait())
        try:
            await asyncio.wait({idle_wait, dead_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle_wait.cancel()
            dead_wait.cancel()
            self._idle.pop(msg_id, None)
        if not idle.is_set():
            return "cancelled"
        self.ran.add(cell.index)
        if msg_id in self._errored:
            self._errored.discard(msg_id)
            return "error"
        return "ok"

    def _send_execute(self, cell: Cell) -> str:
        content = {
            "code": cell.source,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        # Name the cell as JupyterLab does, so that a re-run is known as one
        # (an input keeps what the reader typed; a cell's old listener stops).
        msg = self._kc.session.msg(
            "execute_request", content, metadata={"cellId": f"livekit-cell-{cell.index}"}
        )
        self._kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def _remember(self, msg_id: str, index: int) -> None:
        self._cell_of[msg_id] = index
        while len(self._cell_of) > _REMEMBERED:
            del self._cell_of[next(iter(self._cell_of))]

    async def _read_iopub(self) -> None:
        while True:
            msg = await self._kc.get_iopub_msg()
            self._relay(msg)

    def _relay(self, msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        parent = msg.get("parent_header", {}).get("msg_id")
        cell = self._cell_of.get(parent) if parent else None
        if kind == "status":
            state = content.get("execution_state")
            if state == "idle" and parent in self._idle:
                self._idle[parent].set()
            if state in {"busy", "idle"}:
                self._emit({"type": "status", "state": state})
        elif kind in _OUTPUT_TYPES:
            if kind == "error" and parent:
                self._errored.add(parent)
            output = {"output_type": kind, **content}
            self._emit({"type": "output", "cell": cell, "output": output})
        elif kind == "clear_output":
            self._emit({"type": "clear_output", "cell": cell, "wait": bool(content.get("wait"))})
        elif kind == "comm_open":
            self._comm_cell[content["comm_id"]] = cell
            self._emit(
                {
                    "type": "comm_open",
                    "comm_id": content["comm_id"],
                    "target_name": content.get("target_name"),
                    "data": content.get("data", {}),
                    "metadata": msg.get("metadata", {}),
                    "cell": cell,
                }
            )
        elif kind == "comm_msg":
            self._emit({"type": "comm_msg", "comm_id": content["comm_id"], "data": content["data"]})
        elif kind == "comm_close":
            self._comm_cell.pop(content["comm_id"], None)
            self._emit({"type": "comm_close", "comm_id": content["comm_id"]})

    async def _watch(self) -> None:
        # jupyter_client has no event for a dead kernel: look twice a second.
        while True:
            await asyncio.sleep(0.5)
            if self._restarting or self._km is None:
                continue
            if not await self._km.is_alive() and not self._dead.is_set():
                self._dead.set()
                self._cancel_queued()
                self._emit({"type": "status", "state": "dead"})
