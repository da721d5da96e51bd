"""The web application of ``livekit serve``: the built book, guarded, plus its live socket.

Routes (all behind :class:`Guard`):

``GET /<path>``
    The built book's files, but none whose name or folder starts with a dot
    (``.doctrees/``, ``.buildinfo``: the build's own, no reader needs them).
    ``?token=...`` on any of them, the first time, answers with the login
    cookie and a page that keeps the live key and opens the same address
    without the token (see :class:`Guard`).
``GET /favicon.ico``
    livekit's icon, which browsers ask for on every page.
``GET /_livekit/status``
    ``{"live": true}``: the page script asks this to know a kernel is there.
``GET /_livekit/pages/<page>``
    The page's code cells (indices), or 404 for a page that is not in the book.
``WEBSOCKET /_livekit/live?page=<page>&key=<live key>``
    One page's session.  The page sends operations (:data:`OPERATIONS`); the
    server sends the session's events (:data:`livekit.kernel.session.EVENTS`)
    plus ``hello``, ``error`` and ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from livekit import __version__
from livekit.kernel import _security
from livekit.kernel._outbox import Outbox
from livekit.kernel.book import Book, UnknownCellError, UnknownPageError, dependents
from livekit.kernel.session import Emit, KernelSession, Session, SessionFactory

log = logging.getLogger("livekit.kernel")

#: What a page may ask of its session, by ``op``.
OPERATIONS = {
    "run": "run a cell (``cell``), after the cells before it not run yet; no cell: all",
    "interrupt": "interrupt the running cell, drop the queued ones",
    "restart": "restart the session's kernel",
    "comm": "a widget message (``comm_id``, ``data``); an input change re-runs its readers",
    "ping": "answered with ``pong``, once everything sent before it has been handled",
}

#: The cell tag that keeps a cell out of "Run live" and out of the cells run
#: before another: it runs only from its own Run button.
SKIP_LIVE = "skip-live"

#: Largest message a page may send, in characters.
MAX_MESSAGE = 64 * 1024

#: Seconds a page gets to take one message.  A page that cannot (it stopped
#: reading, or its machine is gone) is cut off and its kernel stopped, as if
#: its tab had closed.  A busy tab still reads within a few hundred
#: milliseconds: the socket's buffers hold megabytes before a send waits.
SEND_TIMEOUT = 10.0

#: livekit's icon, served at /favicon.ico (the book links the same file).
FAVICON = Path(__file__).resolve().parent.parent / "static" / "livekit-favicon.svg"

#: Headers on every answer: no framing by other sites (clickjacking a "Run"
#: button), no token in a Referer, no content sniffing.
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def cookie_name(port: int) -> str:
    """Return the login cookie's name: per port, since cookies ignore ports.

    Examples
    --------
    >>> cookie_name(8765)
    'livekit-token-8765'
    """
    return f"livekit-token-{port}"


class Guard:
    """ASGI middleware: Host, Origin, cookie and live key on every request and socket.

    The token printed by ``livekit serve`` works once.  The first request
    that carries it gets the login cookie and the page that stores the live
    key (:func:`livekit.kernel._security.exchange_page`).  Files need the
    cookie; the live socket needs the cookie *and* ``?key=`` with the live
    key, because every other server on 127.0.0.1 receives the cookie too.

    A request that fails a check gets 403 (a socket: its handshake is refused
    with 403) and never reaches the application.
    """

    def __init__(
        self, app: ASGIApp, *, token: str, port: int, allow_any_host: bool = False
    ) -> None:
        self.app = app
        self.token = token
        self.port = port
        self.allow_any_host = allow_any_host
        #: The login cookie's value and the live socket's key: never the token,
        #: which appears in an address and may be kept in a history.
        self.cookie = _security.new_token()
        self.live_key = _security.new_token()
        self.token_used = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        request = HTTPConnection(scope)
        reason = self._refusal(request)
        if reason is None and scope["type"] == "http" and "token" in request.query_params:
            response = self._trade_token(request)
            if response is not None:
                await response(scope, receive, send)
                return
            reason = "this address worked once and was used: restart livekit serve for a new one"
        if reason is not None:
            await self._deny(scope, receive, send, reason)
            return
        await self.app(scope, receive, _with_headers(send))

    def _refusal(self, request: HTTPConnection) -> str | None:
        """Return why ``request`` is refused, or None (the token is looked at later)."""
        host = request.headers.get("host")
        origin = request.headers.get("origin")
        given = request.query_params.get("token")
        checks = [
            (
                _security.host_allowed(host, self.port, allow_any_host=self.allow_any_host),
                "Host is not this server on a loopback address",
            ),
            (
                _security.origin_allowed(origin, host, scheme=_http_scheme(request.scope)),
                "Origin is not this server",
            ),
        ]
        if given is not None:
            # Only a page's address trades the token, never a socket.
            trades = request.scope["type"] == "http"
            checks.append((trades and _security.token_matches(given, self.token), "wrong token"))
        else:
            cookie = request.cookies.get(cookie_name(self.port))
            checks.append(
                (
                    _security.token_matches(cookie, self.cookie),
                    "no token: open the address that livekit serve printed",
                )
            )
            if request.scope["type"] == "websocket":
                key = request.query_params.get("key")
                checks.append(
                    (
                        _security.token_matches(key, self.live_key),
                        "no live key: open the address that livekit serve printed",
                    )
                )
        return next((reason for passed, reason in checks if not passed), None)

    def _trade_token(self, request: HTTPConnection) -> Response | None:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = _security.local_target(request.scope["path"], query)
        if not self.token_used:
            self.token_used = True
            page = _security.exchange_page(target, self.live_key)
            response: Response = HTMLResponse(
                page, headers={**SECURITY_HEADERS, "cache-control": "no-store"}
            )
            response.set_cookie(
                cookie_name(self.port), self.cookie, httponly=True, samesite="strict", path="/"
            )
            return response
        if _security.token_matches(request.cookies.get(cookie_name(self.port)), self.cookie):
            # The same browser again (the printed address opened twice): it
            # has its cookie and its key already.
            return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        return None

    async def _deny(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        response = PlainTextResponse(f"403 Forbidden: {reason}\n", 403, headers=SECURITY_HEADERS)
        if scope["type"] == "websocket":
            await WebSocket(scope, receive, send).send_denial_response(response)
        else:
            await response(scope, receive, send)


def _http_scheme(scope: Scope) -> str:
    # A WebSocket handshake from an http:// page carries an http:// Origin.
    scheme = str(scope.get("scheme", "http"))
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def _with_headers(send: Send) -> Send:
    async def sender(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
            message = {**message, "headers": headers}
        await send(message)

    return sender


class _Sessions:
    """Every live session of the server, so that shutdown stops them all."""

    def __init__(self, factory: SessionFactory, limit: int) -> None:
        self.factory = factory
        self.limit = limit
        self.live: set[Session] = set()

    async def open(self, cwd: Path, emit: Emit) -> Session:
        if len(self.live) >= self.limit:
            raise OverflowError(f"{self.limit} pages are live already: close one first")
        session = self.factory(cwd, emit)
        self.live.add(session)
        try:
            await session.start()
        except BaseException:
            self.live.discard(session)
            await session.close()
            raise
        return session

    async def close(self, session: Session) -> None:
        self.live.discard(session)
        await session.close()

    async def close_all(self) -> None:
        sessions, self.live = list(self.live), set()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def create_app(
    build_dir: str | Path,
    source_dir: str | Path,
    *,
    token: str,
    port: int,
    allow_any_host: bool = False,
    session_factory: Callable[[Path, Callable[[dict[str, Any]], None]], Session] | None = None,
    max_sessions: int = 8,
    outbox_limit: int = 256,
    send_timeout: float = SEND_TIMEOUT,
    drop: Callable[[Scope], None] | None = None,
) -> ASGIApp:
    """Return the ASGI application that serves a built book and runs its cells.

    Parameters
    ----------
    build_dir
        The built HTML book (``build/html``).
    source_dir
        The book's sources (``docs``): the only code that can run.
    token
        The secret a reader's first request carries (see
        :func:`livekit.kernel._security.new_token`).
    port
        The port the server listens on: requests must name it in Host.
    allow_any_host
        Accept any Host name (serving beyond loopback, on the reader's word).
    session_factory
        Makes a page's session from its folder and an event callback
        (default :class:`~livekit.kernel.session.KernelSession`).
    max_sessions
        How many pages can be live at once (each is a kernel process).
    outbox_limit
        How many messages wait for a slow browser before some are dropped.
    send_timeout
        Seconds a page gets to take one message before it is cut off.
    drop
        Called with a connection's scope to close its transport at once,
        unsent data and all (the server that runs the application knows
        how); without it a cut-off page's socket closes when its buffer
        drains.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> app = create_app(folder, folder, token="secret", port=8765)
    >>> type(app).__name__
    'Guard'
    """
    build = Path(build_dir)
    if not build.is_dir():
        raise ValueError(f"expected a built book folder, got {str(build_dir)!r}")
    book = Book(source_dir)
    sessions = _Sessions(session_factory or _kernel_session, max_sessions)

    async def favicon(request: Request) -> Response:
        return FileResponse(FAVICON, media_type="image/svg+xml")

    async def status(request: Request) -> Response:
        return JSONResponse({"live": True, "version": __version__})

    async def page_cells(request: Request) -> Response:
        page = request.path_params["page"]
        try:
            cells = book.cells(page)
        except UnknownPageError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse({"page": page, "cells": [cell.index for cell in cells]})

    async def live(websocket: WebSocket) -> None:
        page = websocket.query_params.get("page", "")
        try:
            book.cells(page)
        except UnknownPageError as error:
            await websocket.send_denial_response(PlainTextResponse(f"{error}\n", 404))
            return
        await websocket.accept()
        connection = _Connection(websocket, book, page, sessions, outbox_limit)
        if await connection.serve(send_timeout=send_timeout) == "stuck" and drop is not None:
            drop(websocket.scope)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sessions.close_all()

    app = Starlette(
        routes=[
            Route("/favicon.ico", favicon),
            Route("/_livekit/status", status),
            Route("/_livekit/pages/{page:path}", page_cells),
            WebSocketRoute("/_livekit/live", live),
            Mount("/", _BookFiles(directory=build, html=True)),
        ],
        lifespan=lifespan,
    )
    app.state.sessions = sessions
    return Guard(app, token=token, port=port, allow_any_host=allow_any_host)


class _BookFiles(StaticFiles):
    """The built book's files, without the build's own (dot-named) ones."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        # "." is the book's own folder (the path of "/"); ".." is refused by
        # StaticFiles itself.
        if any(p.startswith(".") and p not in {".", ".."} for p in re.split(r"[/\\]", path)):
            return "", None
        return super().lookup_path(path)


def is_input_change(data: dict[str, Any]) -> bool:
    """Return whether a widget message from the page is the reader changing an input.

    That is a Jupyter widget state ``update``, or livekit's own ``input``
    message (see :mod:`livekit.widgets`).

    Examples
    --------
    >>> is_input_change({"method": "custom", "content": {"type": "input", "value": "x"}})
    True
    >>> is_input_change({"method": "custom", "content": {"type": "ack", "seq": 3}})
    False
    """
    if data.get("method") == "update":
        return True
    content = data.get("content")
    return (
        data.get("method") == "custom"
        and isinstance(content, dict)
        and content.get("type") == "input"
    )


def _kernel_session(cwd: Path, emit: Emit) -> Session:
    return KernelSession(cwd, emit)


class _Connection:
    """One open page: its socket, its outbox and (once run) its session."""

    def __init__(
        self, websocket: WebSocket, book: Book, page: str, sessions: _Sessions, limit: int
    ) -> None:
        self.websocket = websocket
        self.book = book
        self.page = page
        self.sessions = sessions
        self.outbox = Outbox(limit=limit)
        self.session: Session | None = None
        self._starting: asyncio.Lock = asyncio.Lock()

    def emit(self, message: dict[str, Any]) -> None:
        if not self.outbox.put(message):
            # The page is too far behind to catch up: let it reconnect.
            self.outbox.close()

    async def serve(self, *, send_timeout: float = SEND_TIMEOUT) -> str:
        """Serve the page until it goes; return ``"stuck"`` if it stopped taking messages."""
        cells = [cell.index for cell in self.book.cells(self.page)]
        self.emit({"type": "hello", "page": self.page, "cells": cells})
        sender = asyncio.create_task(self._send_loop(send_timeout))
        try:
            await self._receive_loop(sender)
        finally:
            # Closing the tab ends the page's session and its listeners.
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if self.session is not None:
                await self.sessions.close(self.session)
            self.outbox.close()
        # The sender ended on its own (not cancelled) and says whether it was stuck.
        return "stuck" if not sender.cancelled() and sender.result() else "gone"

    async def _send_loop(self, timeout: float) -> bool:
        """Send the outbox to the page; return True if a send did not finish in time."""
        try:
            while True:
                message = await self.outbox.get()
                async with asyncio.timeout(timeout):
                    await self.websocket.send_text(json.dumps(message))
        except TimeoutError:
            log.warning("live page %s took no message for %s s: cut off", self.page, timeout)
            return True
        except EOFError:
            # Too far behind to catch up (see Outbox): close, the page may reconnect.
            try:
                async with asyncio.timeout(timeout):
                    await self.websocket.close(code=1013)
            except TimeoutError:
                return True
            except Exception:
                log.debug("live socket closed while closing", exc_info=True)
        except Exception:  # the socket went away; the receiver sees it too
            log.debug("live socket closed while sending", exc_info=True)
        return False

    async def _receive_loop(self, sender: asyncio.Task[bool]) -> None:
        while not sender.done():
            receive = asyncio.ensure_future(self.websocket.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self.emit({"type": "error", "message": "expected a JSON text message"})
                continue
            await self.handle(text)

    async def handle(self, text: str) -> None:
        """Act on one message from the page; any mistake gets an error reply."""
        try:
            if len(text) > MAX_MESSAGE:
                raise ValueError(f"message of {len(text)} characters is over {MAX_MESSAGE}")
            request = json.loads(text)
            if not isinstance(request, dict):
                raise ValueError(f"expected a JSON object, got {type(request).__name__}")
            op = request.get("op")
            if op not in OPERATIONS:
                raise ValueError(f"expected op in {sorted(OPERATIONS)}, got {op!r}")
            await getattr(self, f"_op_{op}")(request)
        except (UnknownCellError, UnknownPageError) as error:
            self.emit({"type": "error", "status": 404, "message": str(error)})
        except (ValueError, LookupError, TypeError, OverflowError) as error:
            self.emit({"type": "error", "status": 400, "message": str(error)})
        except Exception as error:
            log.exception("live page %s: request failed", self.page)
            self.emit({"type": "error", "status": 500, "message": f"server error: {error}"})

    async def _session(self) -> Session:
        async with self._starting:
            if self.session is None:
                cwd = self.book.path(self.page).parent
                self.session = await self.sessions.open(cwd, self.emit)
            return self.session

    async def _op_run(self, request: dict[str, Any]) -> None:
        cells = self.book.cells(self.page)
        # A cell tagged skip-live (one that stops a listener, say) runs only
        # when the reader asks for it by name.
        implicit = [c for c in cells if SKIP_LIVE not in c.tags]
        index = request.get("cell")
        if index is None:
            target = implicit
        else:
            if not isinstance(index, int) or isinstance(index, bool):
                raise ValueError(f"expected cell to be an integer, got {index!r}")
            cell = self.book.cell(self.page, index)
            session = await self._session()
            before = [c for c in implicit if c.index < cell.index and c.index not in session.ran]
            target = [*before, cell]
        (await self._session()).run(target)

    async def _op_ping(self, request: dict[str, Any]) -> None:
        self.emit({"type": "pong"})

    async def _op_interrupt(self, request: dict[str, Any]) -> None:
        if self.session is not None:
            await self.session.interrupt()

    async def _op_restart(self, request: dict[str, Any]) -> None:
        await (await self._session()).restart()

    async def _op_comm(self, request: dict[str, Any]) -> None:
        comm_id, data = request.get("comm_id"), request.get("data")
        if not isinstance(comm_id, str) or not isinstance(data, dict):
            raise ValueError("expected comm_id (a string) and data (an object)")
        if self.session is None:
            raise LookupError(f"no widget {comm_id!r}: the page is not live")
        owner = self.session.send_comm(comm_id, data)
        if is_input_change(data) and owner is not None:
            # An input changed: run again the cells that read it (but not one
            # tagged skip-live, which runs only when the reader names it).
            cells = self.book.cells(self.page)
            again = dependents(cells, owner, ran=self.session.ran)
            self.session.run([c for c in cells if c.index in again and SKIP_LIVE not in c.tags])
