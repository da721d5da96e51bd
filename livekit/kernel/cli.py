"""``livekit serve [BUILD_DIR] [--build] [--port 8765] [--no-browser]``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import subprocess
import sys
import webbrowser
from pathlib import Path
from typing import Any

from livekit._cli import add_address_options
from livekit.kernel import _security

#: The command that builds the book, as tox and CI do.
BUILD_COMMAND = ("-m", "sphinx", "-n", "-W", "-c", "conf")

#: What to run when the serve extra is missing.  livekit is not on the
#: package index (its name there belongs to another project): install it from
#: a clone, or from the repository as the README shows.
SERVE_EXTRA_HINT = (
    'from a clone: python -m pip install -e ".[serve]"; '
    'from the repository: python -m pip install "livekit-introspect[serve] @ git+<repository URL>"'
)


def add_parser(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``livekit`` command.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="livekit")
    >>> add_parser(parser.add_subparsers())
    >>> args = parser.parse_args(["serve", "--no-browser", "--port", "0"])
    >>> args.build_dir, args.port, args.browser, args.source
    ('build/html', 0, False, 'docs')
    """
    parser = subparsers.add_parser(
        "serve",
        help="serve the built book on this machine, with its cells live",
        description=(
            "Serve the built book on 127.0.0.1 and run its pages' cells in local "
            "kernels. Open the printed address: it carries a token that works once, "
            "in one browser."
        ),
    )
    parser.add_argument(
        "build_dir",
        nargs="?",
        default="build/html",
        metavar="BUILD_DIR",
        help="the built HTML book (default: build/html)",
    )
    parser.add_argument(
        "--source",
        default="docs",
        metavar="DIR",
        help="the book's sources, the only code that runs (default: docs)",
    )
    parser.add_argument(
        "--build",
        action="store_true",
        help="build the book first: python -m sphinx -n -W -c conf SOURCE BUILD_DIR",
    )
    add_address_options(
        parser,
        port=8765,
        port_help="port (default: 8765; 0: any free)",
        host_help="address to bind (default: 127.0.0.1; anything else lets other machines in)",
    )
    parser.add_argument(
        "--no-browser", dest="browser", action="store_false", help="do not open a browser"
    )
    parser.set_defaults(handler=functools.partial(run, exit_now=True))


def run(args: argparse.Namespace, *, exit_now: bool = False) -> int:
    """Build (if asked), then serve until Ctrl-C or SIGTERM.

    With ``exit_now`` (the ``livekit`` command), the process ends as soon as
    everything is stopped, without the interpreter's teardown.
    """
    try:
        from livekit.kernel.server import BookServer
    except ImportError as error:
        print(
            f"livekit serve needs the serve extra ({error.name} is missing). "
            f"Install it {SERVE_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2

    if args.build:
        command = [sys.executable, *BUILD_COMMAND, args.source, args.build_dir]
        print("livekit serve: building the book:", " ".join(command), flush=True)
        if subprocess.run(command, check=False).returncode != 0:  # noqa: S603 - our own interpreter
            print("livekit serve: the build failed; nothing served", file=sys.stderr)
            return 1
    if not Path(args.build_dir).is_dir():
        print(
            f"livekit serve: no built book in {args.build_dir!r}: build it first, or pass --build",
            file=sys.stderr,
        )
        return 2
    if not _security.is_loopback_name(args.host):
        print(
            f"WARNING: livekit serve binds {args.host}, not loopback. Anyone who can reach "
            "this machine and learns the token can run the book's code here.",
            file=sys.stderr,
        )
    try:
        server = BookServer(args.build_dir, args.source, host=args.host, port=args.port)
    except OSError as error:
        print(f"livekit serve: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"livekit serve: the book is live at\n\n    {server.url}\n", flush=True)
    print("The address works once, in one browser. Press Ctrl-C to stop.", flush=True)
    if args.browser:
        webbrowser.open(server.url)
    # uvicorn shuts down on SIGINT and SIGTERM, then raises the signal again
    # with the handler it found: make SIGTERM end as Ctrl-C does, quietly.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("livekit serve: stopped", flush=True)
    if exit_now:
        # Every thread, socket and kernel the server started is stopped. The
        # interpreter's own teardown (pyzmq, tornado, uvicorn modules) adds up
        # to a second before the shell prompt returns, and nothing to undo.
        sys.stderr.flush()
        os._exit(0)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
