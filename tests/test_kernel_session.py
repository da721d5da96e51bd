"""A page session in a real ipykernel process: outputs, errors, interrupt, restart, widgets.

Each test starts its own kernel (a few seconds) and checks that none is left
when the session closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil
import pytest

from livekit.kernel.book import Cell
from livekit.kernel.session import KernelSession

Event = dict[str, Any]


class Page:
    """What a page would receive from its session, with a way to wait for it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()

    async def wait_for(self, predicate: Callable[[Event], bool], *, after: int = 0) -> Event:
        """Return the first event (from index ``after``) that ``predicate`` accepts."""
        async with asyncio.timeout(60):
            while True:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    async def done(self, cell: int, *, after: int = 0) -> Event:
        return await self.wait_for(
            lambda e: e["type"] == "cell_done" and e["cell"] == cell, after=after
        )

    def outputs(self, cell: int) -> list[dict[str, Any]]:
        return [e["output"] for e in self.events if e["type"] == "output" and e["cell"] == cell]


def run_session(test: Callable[[KernelSession, Page], Coroutine[Any, Any, None]]) -> None:
    """Start a session, run ``test`` against it, close it, and check no kernel is left."""

    async def main() -> None:
        page = Page()
        session = KernelSession(Path.cwd(), page)
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        try:
            await session.start()
            await test(session, page)
        finally:
            await session.close()
        left = {p.pid for p in psutil.Process().children(recursive=True)} - before
        assert left == set()
        assert session._sockets is None

    asyncio.run(main())


def test_cells_run_in_order_and_their_outputs_reach_the_page() -> None:
    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, "x = 20\nprint('hi')"), Cell(3, "x + 22")])
        assert await page.done(3) == {"type": "cell_done", "cell": 3, "status": "ok"}
        assert page.outputs(1) == [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
        [result] = page.outputs(3)
        assert result["data"] == {"text/plain": "42"}
        assert session.ran == {1, 3}

    run_session(test)


def test_a_cell_that_raises_shows_its_error_and_the_kernel_goes_on() -> None:
    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, "1 / 0"), Cell(2, "print('skipped')")])
        assert (await page.done(1))["status"] == "error"
        assert (await page.done(2))["status"] == "cancelled"
        [error] = page.outputs(1)
        assert (error["output_type"], error["ename"]) == ("error", "ZeroDivisionError")
        assert page.outputs(2) == []
        mark = len(page.events)
        session.run([Cell(2, "print('still here')")])
        assert (await page.done(2, after=mark))["status"] == "ok"
        assert page.outputs(2) == [
            {"output_type": "stream", "name": "stdout", "text": "still here\n"}
        ]

    run_session(test)


def test_a_cell_tagged_raises_exception_does_not_stop_the_run() -> None:
    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, "1 / 0", ("raises-exception",)), Cell(2, "print('after')")])
        assert (await page.done(2))["status"] == "ok"

    run_session(test)


def test_a_long_cell_can_be_interrupted() -> None:
    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, "import time\nprint('sleeping', flush=True)\ntime.sleep(120)")])
        await page.wait_for(lambda e: e["type"] == "output" and e["cell"] == 1)
        await session.interrupt()
        assert (await page.done(1))["status"] == "error"
        assert page.outputs(1)[-1]["ename"] == "KeyboardInterrupt"

    run_session(test)


def test_a_crashed_session_can_be_restarted_with_a_fresh_namespace() -> None:
    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, "x = 1"), Cell(2, "import os\nos._exit(1)")])
        await page.wait_for(lambda e: e == {"type": "status", "state": "dead"})
        assert (await page.done(2))["status"] == "cancelled"
        await session.restart()
        assert session.ran == set()
        mark = len(page.events)
        session.run([Cell(3, "'x' in globals()")])
        await page.done(3, after=mark)
        assert page.outputs(3)[-1]["data"] == {"text/plain": "False"}

    run_session(test)


def test_a_widget_comm_is_relayed_both_ways_and_keeps_its_cell() -> None:
    source = "from livekit.shorts import read_text\nname = read_text('Name', default='world')"

    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, source), Cell(2, "print(name)")])
        await page.done(2)
        [view] = [o for o in page.outputs(1) if o["output_type"] == "display_data"]
        comm = view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        [opened] = [e for e in page.events if e["type"] == "comm_open" and e["comm_id"] == comm]
        assert opened["target_name"] == "jupyter.widget"
        assert opened["cell"] == 1
        assert opened["data"]["state"]["_esm"].startswith("// livekit-widget.js")
        assert page.outputs(2)[-1]["text"] == "world\n"
        # The page's widget says it is ready: Python answers with its state.
        assert session.send_comm(comm, {"method": "custom", "content": {"type": "ready"}}) == 1
        replay = await page.wait_for(lambda e: e["type"] == "comm_msg" and e["comm_id"] == comm)
        assert replay["data"]["content"]["type"] == "replay"
        assert replay["data"]["content"]["value"] == "world"
        # The reader types; the cells that read the input run again.
        typed = {"method": "custom", "content": {"type": "input", "value": "Ada"}}
        session.send_comm(comm, typed)
        mark = len(page.events)
        session.run([Cell(1, source), Cell(2, "print(name)")])
        await page.done(2, after=mark)
        assert page.outputs(2)[-1]["text"] == "Ada\n"
        with pytest.raises(LookupError, match="no widget 'nope' in this session"):
            session.send_comm("nope", {})

    run_session(test)


def stdout_of(page: Page, cell: int) -> list[str]:
    return [o["text"] for o in page.outputs(cell) if o["output_type"] == "stream"]


def test_a_re_run_asked_while_its_cells_run_runs_them_all_again_in_order() -> None:
    # A reader typing: each keystroke asks for cells 1 and 2 again while
    # cell 1 of the previous keystroke still runs.  Cell 2 must run after the
    # newest run of cell 1, not before it.
    first = Cell(1, "import time\ntime.sleep(0.5)\nn = globals().get('n', 0) + 1")
    second = Cell(2, "print(n)")

    async def test(session: KernelSession, page: Page) -> None:
        session.run([first, second])
        await page.wait_for(lambda e: e == {"type": "cell_start", "cell": 1})
        session.run([first, second])
        session.run([first, second])
        await page.done(2)
        await page.wait_for(lambda e: e["type"] == "status" and e["state"] == "idle")
        started = [e["cell"] for e in page.events if e["type"] == "cell_start"]
        assert started == [1, 1, 2]
        assert stdout_of(page, 2) == ["2\n"]

    run_session(test)


def test_a_failed_cell_does_not_cancel_a_newer_re_run() -> None:
    # The reader typed on while a cell failed on an unfinished value: the
    # newer request still runs, with the value the box shows at last.
    first = Cell(1, "import time\ntime.sleep(0.5)\nn = globals().get('n', 0) + 1\nassert n > 1")
    second = Cell(2, "print(n)")

    async def test(session: KernelSession, page: Page) -> None:
        session.run([first, second])
        await page.wait_for(lambda e: e == {"type": "cell_start", "cell": 1})
        session.run([first, second])
        done = [await page.done(1)]
        done.append(await page.done(1, after=page.events.index(done[0]) + 1))
        assert [e["status"] for e in done] == ["error", "ok"]
        assert (await page.done(2))["status"] == "ok"
        assert stdout_of(page, 2) == ["2\n"]

    run_session(test)
